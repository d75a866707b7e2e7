
import pytest
import torch

# Keep the CVT centroid cache inside the test session, and torch single-threaded: tests run
# small tensors, where a second thread only adds contention on a 2-core machine.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("NEUROQD_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    yield
