"""Backends give the same results as in-process evaluation, whatever the worker count."""

import pytest
import torch

from evo.build import build_run
from experiments.config import load_raw, resolve


def run(**flags):
    config = resolve(load_raw("me_arm"), ["budget.evaluations=1536", "batch_size=512"], **flags)
    engine = build_run(config, progress=False)
    try:
        summary = engine.run()
    finally:
        engine.algorithm.evaluator.close()
    return summary, engine.algorithm.archive.elites()


def same(a, b):
    (sa, ea), (sb, eb) = a, b
    return (sa["qd_score"] == sb["qd_score"] and sa["coverage"] == sb["coverage"]
            and all(torch.equal(ea[k], eb[k]) for k in ea))


def test_process_pool_matches_local():
    assert same(run(), run(backend="process", workers=2))


def test_slices_cover_the_batch_in_order():
    from evo.workers.pool import split_slices

    s = split_slices(10, 3)
    assert [list(range(10))[x] for x in s] == [[0, 1, 2], [3, 4, 5, 6], [7, 8, 9]]
    assert split_slices(2, 4) == [slice(0, 1), slice(1, 2)]


@pytest.mark.slow
def test_ray_actors_match_local():
    pytest.importorskip("ray")
    assert same(run(), run(backend="ray", workers=2))
