import os

import pytest
import torch

# Keep the CVT centroid cache inside the test session, and torch single-threaded: tests run
# small tensors, where a second thread only adds contention on a 2-core machine.
torch.set_num_threads(1)

# `make test` and CI set NEUROQD_STRICT_SKIPS=1: a skipped test is not a passed test, so a skip
# for anything but the missing GPU (mujoco, ray, gymnasium or chromium not installed) fails.
STRICT_SKIPS = os.environ.get("NEUROQD_STRICT_SKIPS") == "1"
ALLOWED_SKIP = "needs CUDA"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if STRICT_SKIPS and report.skipped and not hasattr(report, "wasxfail"):
        reason = str(report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr)
        if ALLOWED_SKIP not in reason:
            report.outcome = "failed"
            report.longrepr = (f"skipped, and NEUROQD_STRICT_SKIPS=1 forbids skips other than "
                               f"'{ALLOWED_SKIP}': {reason}")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("NEUROQD_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    yield
