import pytest
import torch
from torch import nn

from evo.policies import MLPPolicy, ModulePolicy, make_policy


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_shapes_dtypes_and_num_params():
    pol = MLPPolicy(11, 2, hidden=(16,))
    assert pol.num_params == 11 * 16 + 16 + 16 * 2 + 2
    assert pol.layer_shapes == [(11, 16), (16, 2)]
    params = pol.init(7, _gen(0))
    assert params.shape == (7, pol.num_params) and params.dtype == torch.float32
    actions = pol(params, torch.randn(7, 11, generator=_gen(1)))
    assert actions.shape == (7, 2) and actions.dtype == torch.float32
    assert actions.abs().max() <= 1.0  # tanh output


def test_mlp_matches_module_policy_on_same_flat_params():
    pol = MLPPolicy(11, 2, hidden=(16,))
    seq = nn.Sequential(nn.Linear(11, 16), nn.Tanh(), nn.Linear(16, 2), nn.Tanh())
    mod = ModulePolicy(seq)
    assert mod.num_params == pol.num_params
    params = pol.init(32, _gen(3))
    params[:, 176:192] = torch.randn(32, 16, generator=_gen(4))  # non-zero biases too
    obs = torch.randn(32, 11, generator=_gen(5))
    a = pol(params, obs)
    b = mod(params, obs)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # and against loading one row into the plain module
    mod.load_into(seq, params[9])
    torch.testing.assert_close(seq(obs[9]), a[9], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(mod.flatten(seq), params[9])


def test_deeper_relu_mlp_matches_to_module():
    pol = MLPPolicy(5, 3, hidden=(8, 8), activation="relu", output_activation="none")
    params = pol.init(6, _gen(0)) + 0.1
    obs = torch.randn(6, 5, generator=_gen(1))
    torch.testing.assert_close(pol(params, obs), ModulePolicy(pol.to_module())(params, obs))


@pytest.mark.parametrize("policy_kind", ["mlp", "module"])
def test_rows_are_independent(policy_kind):
    pol = MLPPolicy(4, 2, hidden=(8,))
    policy = pol if policy_kind == "mlp" else ModulePolicy(pol.to_module())
    params = pol.init(5, _gen(0))
    obs = torch.randn(5, 4, generator=_gen(1))
    before = policy(params, obs)
    params2, obs2 = params.clone(), obs.clone()
    params2[2] = pol.init(1, _gen(9))[0]
    obs2[2] = torch.randn(4, generator=_gen(10))
    after = policy(params2, obs2)
    keep = [0, 1, 3, 4]
    assert torch.equal(before[keep], after[keep])
    assert not torch.equal(before[2], after[2])


def test_bound_forward_reuses_buffers_without_aliasing_outputs():
    pol = MLPPolicy(3, 2, hidden=(4,))
    params = pol.init(4, _gen(0))
    forward = pol.bind(params)
    obs1, obs2 = torch.randn(4, 3, generator=_gen(1)), torch.randn(4, 3, generator=_gen(2))
    with torch.no_grad():
        a1 = forward(obs1)
        a1_copy = a1.clone()
        forward(obs2)
    assert torch.equal(a1, a1_copy)  # returned actions are not overwritten by the next step


def test_gradients_flow_through_params():
    pol = MLPPolicy(3, 2, hidden=(4,))
    params = pol.init(2, _gen(0)).requires_grad_(True)
    pol(params, torch.randn(2, 3, generator=_gen(1))).sum().backward()
    assert params.grad is not None and params.grad.abs().sum() > 0


@pytest.mark.parametrize("policy_kind", ["mlp", "module"])
def test_init_deterministic_per_seed(policy_kind):
    pol = MLPPolicy(11, 2, hidden=(16,))
    policy = pol if policy_kind == "mlp" else ModulePolicy(pol.to_module())
    a = policy.init(3, _gen(42))
    b = policy.init(3, _gen(42))
    c = policy.init(3, _gen(43))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a[0], a[1])


def test_init_statistics_follow_deep_ga_normal_init():
    pol = MLPPolicy(100, 50, hidden=(200,), output_activation="none")
    params = pol.init(20, _gen(0))
    w1 = params[:, : 100 * 200]
    b1 = params[:, 100 * 200 : 100 * 200 + 200]
    assert abs(w1.std().item() - 0.1) < 0.005  # 1 / sqrt(fan_in=100)
    assert torch.count_nonzero(b1) == 0
    assert torch.equal(pol.init(20, _gen(0)), ModulePolicy(pol.to_module()).init(20, _gen(0)))


def test_bad_activation_and_spec_keys():
    with pytest.raises(ValueError, match="tanh"):
        MLPPolicy(3, 2, activation="sigmoidish")
    with pytest.raises(ValueError, match="output_activation"):
        MLPPolicy(3, 2, output_activation="softmax")
    with pytest.raises(ValueError, match="hiden"):
        make_policy({"hiden": [16]}, 3, 2)
    pol = make_policy({"hidden": [8, 8], "activation": "relu", "output_activation": "tanh"}, 3, 2)
    assert pol.layer_shapes == [(3, 8), (8, 8), (8, 2)]
    with pytest.raises(ValueError, match="shape"):
        pol(pol.init(2, _gen(0))[:, :-1], torch.zeros(2, 3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    pol = MLPPolicy(11, 2, hidden=(16,))
    params = pol.init(64, _gen(0))
    obs = torch.randn(64, 11, generator=_gen(1))
    cpu = pol(params, obs)
    gpu = pol(params.cuda(), obs.cuda()).cpu()
    torch.testing.assert_close(cpu, gpu, rtol=1e-4, atol=1e-5)
    assert torch.equal(pol.init(4, _gen(2), device="cuda").cpu(), pol.init(4, _gen(2)))
