import numpy as np
import pytest
import torch

import archives.centroids as centroids_mod
from archives import StateFileError, load_archive, load_state, make_archive, save_archive, save_state


def filled(kind="grid", n=300, seed=0, **spec):
    g = torch.Generator().manual_seed(seed)
    spec = {"type": kind, **({"dims": [10, 10]} if kind == "grid" else {}), **spec}
    a = make_archive(spec, 3, [(0, 1), (0, 1)], fitness_offset=-1.0)
    a.add(torch.rand(n, 3, generator=g), torch.rand(n, generator=g) - 0.5,
          torch.rand(n, 2, generator=g))
    return a


def test_grid_keeps_the_best_per_cell_and_metrics_use_the_offset():
    a = make_archive({"type": "grid", "dims": [2, 1]}, 1, [(0, 1), (0, 1)], fitness_offset=-1.0)
    status = a.add(torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([0.1, 0.5, -0.2]),
                   torch.tensor([[0.1, 0.5], [0.2, 0.5], [0.9, 0.5]]))
    assert len(a) == 2
    m = a.metrics()
    assert m["qd_score"] == pytest.approx((0.5 + 1) + (-0.2 + 1))
    assert m["coverage"] == 1.0 and m["max_fitness"] == pytest.approx(0.5)
    assert (status > 0).tolist() == [True, True, True]
    # a worse genome for an occupied cell is rejected
    assert a.add(torch.tensor([[9.0]]), torch.tensor([0.0]), torch.tensor([[0.15, 0.5]])).item() == 0


def test_failed_evaluations_are_never_inserted():
    a = make_archive({"type": "grid", "dims": [10, 10]}, 2, [(0, 1), (0, 1)])
    failed = torch.tensor([True, False, True])
    st = a.add(torch.zeros(3, 2), torch.tensor([5.0, 1.0, 7.0]), torch.rand(3, 2), failed)
    assert st.tolist()[0] == 0 and st.tolist()[2] == 0 and len(a) == 1
    assert a.metrics()["max_fitness"] == 1.0


@pytest.mark.parametrize("kind,spec", [("grid", {}), ("cvt", {"cells": 50, "samples": 2000}),
                                       ("proximity", {"k_neighbors": 3, "novelty_threshold": 0.05})])
def test_save_load_round_trip_is_exact_including_sampling(tmp_path, kind, spec):
    a = filled(kind, **spec)
    save_archive(a, tmp_path / "a.npz")
    b = load_archive(tmp_path / "a.npz")
    ea, eb = a.elites(), b.elites()
    for k in ea:
        assert torch.equal(ea[k], eb[k]), k
    assert str(a.metrics()) == str(b.metrics())  # str: NaN coverage equals itself
    # same parents from the same generator: the insertion order was restored too
    assert torch.equal(a.sample(64, torch.Generator().manual_seed(3)),
                       b.sample(64, torch.Generator().manual_seed(3)))
    # no pickle anywhere
    with np.load(tmp_path / "a.npz", allow_pickle=False) as f:
        assert "__meta__" in f.files


def test_cvt_centroids_are_cached_on_disk(monkeypatch):
    make_archive({"type": "cvt", "cells": 32, "samples": 1000}, 2, [(0, 1), (0, 1)])
    calls = []
    monkeypatch.setattr(centroids_mod, "k_means_centroids",
                        lambda **kw: calls.append(kw) or (_ for _ in ()).throw(AssertionError))
    a = make_archive({"type": "cvt", "cells": 32, "samples": 1000}, 2, [(0, 1), (0, 1)])
    assert calls == [] and a.cells == 32


def test_bad_archive_specs_name_the_key():
    with pytest.raises(ValueError, match="archive.dims"):
        make_archive({"type": "grid", "dims": [10]}, 2, [(0, 1), (0, 1)])
    with pytest.raises(ValueError, match="archive.type: unknown archive 'hex'"):
        make_archive({"type": "hex"}, 2, [(0, 1), (0, 1)])


def test_corrupted_state_file_error_names_the_file(tmp_path):
    path = tmp_path / "s.npz"
    save_state(path, {"x": torch.arange(1000), "nested": {"v": 1.5, "name": "a"}})
    assert load_state(path)["nested"] == {"v": 1.5, "name": "a"}
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(StateFileError, match=str(path)):
        load_state(path)
    flipped = bytearray(data)
    flipped[200] ^= 0xFF
    path.write_bytes(bytes(flipped))
    with pytest.raises(StateFileError, match="corrupted"):
        load_state(path)


def test_heatmap_is_written(tmp_path):
    from archives.plot import plot_heatmap

    for kind, spec in [("grid", {}), ("cvt", {"cells": 40, "samples": 1000})]:
        a = filled(kind, **spec)
        plot_heatmap(a, tmp_path / f"{kind}.png", title="t")
        assert (tmp_path / f"{kind}.png").stat().st_size > 5000


def test_optimiser_states_round_trip_exactly_with_integer_keys(tmp_path):
    import torch

    from archives import load_state, save_state

    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.8, 0.99))
    for _ in range(3):
        opt.zero_grad()
        net(torch.randn(8, 3, generator=torch.Generator().manual_seed(0))).sum().backward()
        opt.step()
    state = opt.state_dict()
    save_state(tmp_path / "opt.npz", {"optimiser": state, "mixed": {1: "a", "1": "b"}})
    loaded = load_state(tmp_path / "opt.npz")
    assert loaded["mixed"] == {1: "a", "1": "b"}
    back = loaded["optimiser"]
    assert set(back["state"]) == set(state["state"]) == {0, 1, 2, 3}
    assert back["param_groups"] == state["param_groups"]  # betas stay a tuple
    for k in state["state"]:
        for name, value in state["state"][k].items():
            assert torch.equal(back["state"][k][name], value), (k, name)
    # a fresh optimiser loaded from the file continues exactly like the original
    net2 = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    net2.load_state_dict(net.state_dict())
    opt2 = torch.optim.Adam(net2.parameters())
    opt2.load_state_dict(back)
    for o, n in ((opt, net), (opt2, net2)):
        o.zero_grad()
        n(torch.ones(2, 3)).sum().backward()
        o.step()
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), net2.parameters()))
