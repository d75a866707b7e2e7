"""The ``neuroqd`` command, shipped configs, benchmarks and result reproductions."""
