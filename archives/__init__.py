"""ribs-backed archives with torch tensors in and out, their metrics, files and heatmaps."""

from archives.base import ARCHIVE_KINDS, Archive, make_archive
from archives.centroids import cached_centroids
from archives.io import (StateFileError, load_archive, load_state, save_archive, save_state,
                         write_atomic)

__all__ = [
    "ARCHIVE_KINDS", "Archive", "StateFileError", "cached_centroids", "load_archive",
    "load_state", "make_archive", "save_archive", "save_state", "write_atomic",
]
