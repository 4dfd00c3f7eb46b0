"""`SSMCore` stores each per-route parameter of its K routes as one tensor; the state dict keeps the originals' names
(Vim's `A_b_log`, `x_proj_b.weight`, ...; LocalMamba's `A_log_k`, ...) and loading follows nn.Module's rules."""

from __future__ import annotations

import pytest
import timm
import torch
from golden import load_golden
from timm.optim import param_groups_weight_decay
from timm.utils import ModelEmaV3
from torch import nn

from vssm import scans
from vssm.analysis.roofline import Mode, profile_model
from vssm.layers.mamba_mixer import MambaMixer
from vssm.layers.mambavision_mixer import MambaVisionMixer
from vssm.layers.selective_ssm import init_ssm_parameters
from vssm.layers.ssm_core import RouteNaming, SSMConfig
from vssm.models import localmamba, vim

# fixture -> (our model, its checkpoint_filter_fn)
FIXTURES = {"vim_test": ("test_vim", vim.checkpoint_filter_fn),
            "local_vim_test": ("test_local_vim", localmamba.checkpoint_filter_fn)}


def _fixture_model(fixture: str) -> tuple[nn.Module, dict[str, torch.Tensor], torch.Tensor]:
    """The fixture's model built fresh, its original-format checkpoint (strict-loadable keys) and input."""
    golden = load_golden(fixture)
    name, filter_fn = FIXTURES[fixture]
    kwargs = golden.meta["timm_kwargs"] if fixture == "vim_test" else {
        "img_size": 160, "embed_dim": 64, "depth": 2, "directions": golden.kwargs["directions"]}
    model = timm.create_model(name, **kwargs).eval()
    return model, filter_fn(golden.checkpoint, model), golden.input


@pytest.mark.parametrize("fixture", sorted(FIXTURES))
def test_state_dict_round_trip_keeps_the_original_keys(fixture: str) -> None:
    model, original, x = _fixture_model(fixture)
    model.load_state_dict(original, strict=True)
    saved = model.state_dict()
    assert set(saved) == set(original)
    assert all(torch.equal(saved[k], original[k]) for k in original)
    fresh, _, _ = _fixture_model(fixture)
    fresh.load_state_dict(saved, strict=True)
    with torch.no_grad():
        assert torch.equal(fresh(x), model(x))


def _vim_mixer(**kwargs: object) -> MambaMixer:
    return MambaMixer(8, num_routes=2, config=SSMConfig(d_state=4), **kwargs)


def test_a_per_route_tensor_of_the_wrong_shape_is_named_with_both_shapes() -> None:
    mixer = _vim_mixer()
    state = mixer.state_dict()
    state["A_b_log"] = torch.randn(16, 5)
    for strict in (True, False):
        with pytest.raises(RuntimeError, match=r"size mismatch for A_b_log: copying a param with shape "
                                               r"torch.Size\(\[16, 5\]\) from checkpoint, the shape in current "
                                               r"model is torch.Size\(\[16, 4\]\)"):
            _vim_mixer().load_state_dict(state, strict=strict)


def test_a_missing_route_is_a_missing_key_and_keeps_its_values_when_not_strict() -> None:
    source, target = _vim_mixer(), _vim_mixer()
    state = source.state_dict()
    del state["dt_proj_b.bias"]
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "dt_proj_b.bias"'):
        _vim_mixer().load_state_dict(state, strict=True)
    kept = target.state_dict()["dt_proj_b.bias"].clone()
    result = target.load_state_dict(state, strict=False)
    assert result.missing_keys == ["dt_proj_b.bias"] and result.unexpected_keys == []
    loaded = target.state_dict()
    assert torch.equal(loaded["dt_proj.bias"], state["dt_proj.bias"]) and torch.equal(loaded["dt_proj_b.bias"], kept)


def test_the_stacked_name_is_not_a_checkpoint_key_of_indexed_routes() -> None:
    mixer = MambaMixer(8, num_routes=3, naming=RouteNaming.INDEXED)
    state = mixer.state_dict()
    state["A_log"] = torch.randn(48, 16)
    with pytest.raises(RuntimeError, match=r'Unexpected key\(s\) in state_dict: "A_log"'):
        MambaMixer(8, num_routes=3, naming=RouteNaming.INDEXED).load_state_dict(state, strict=True)
    result = MambaMixer(8, num_routes=3, naming=RouteNaming.INDEXED).load_state_dict(state, strict=False)
    assert result.unexpected_keys == ["A_log"] and result.missing_keys == []


def test_loading_stacks_each_route_in_its_place() -> None:
    mixer = MambaMixer(8, num_routes=3, naming=RouteNaming.INDEXED)
    state = {k: torch.randn_like(v) for k, v in mixer.state_dict().items()}
    mixer.load_state_dict(state, strict=True)
    for k, view in enumerate(mixer.route_views("x_proj.weight")):
        assert torch.equal(view, state[f"x_proj_{k}.weight"])
    assert torch.equal(mixer.A_log, torch.cat([state[f"A_log_{k}"] for k in range(3)]))
    assert torch.equal(mixer.conv1d.bias, torch.cat([state[f"conv1d_{k}.bias"] for k in range(3)]))


def _per_route_draws(routes: int, d_model: int, config: SSMConfig) -> list[torch.Tensor]:
    """The original's modules, route by route, in its construction order (their draws)."""
    inner, rank = config.inner_dim(d_model), config.rank(d_model)
    tensors = []
    for _ in range(routes):
        x_proj = nn.Linear(inner, rank + 2 * config.d_state, bias=False)
        dt_proj = nn.Linear(rank, inner)
        a_log, d = torch.empty(inner, config.d_state), torch.empty(inner)
        init_ssm_parameters(dt_proj.weight, dt_proj.bias, a_log, d, dt_min=config.dt_min, dt_max=config.dt_max,
                            dt_init_floor=config.dt_init_floor)
        tensors += [x_proj.weight, dt_proj.weight, dt_proj.bias, a_log, d]
    tensors.append(nn.Linear(d_model, 2 * inner, bias=False).weight)  # in_proj
    for _ in range(routes):
        conv = nn.Conv1d(inner, inner, config.d_conv, groups=inner, padding=config.d_conv - 1)
        tensors += [conv.weight, conv.bias]
    return tensors


def test_seeded_construction_draws_the_per_route_modules_numbers() -> None:
    config = SSMConfig(d_state=4)
    torch.manual_seed(5)
    expected = _per_route_draws(3, 8, config)
    torch.manual_seed(5)
    mixer = MambaMixer(8, num_routes=3, config=config, naming=RouteNaming.INDEXED)
    state = mixer.state_dict()
    ssm = [f"x_proj_{k}.weight dt_proj_{k}.weight dt_proj_{k}.bias A_log_{k} D_{k}".split() for k in range(3)]
    convs = [(f"conv1d_{k}.weight", f"conv1d_{k}.bias") for k in range(3)]
    keys = [key for route in ssm for key in route] + ["in_proj.weight"] + [key for route in convs for key in route]
    for key, tensor in zip(keys, expected, strict=True):
        assert torch.equal(state[key], tensor), key


def test_mambavision_mixer_with_routes_splits_its_convolutions() -> None:
    order = next(n for n in scans.list_orders() if scans.get(n).num_routes > 1)
    mixer = MambaVisionMixer(16, window_size=4, scan=order)
    keys = set(mixer.state_dict())
    assert {"conv1d_x_0.weight", "conv1d_z_1.weight", "A_log_1", "x_proj_0.weight"} <= keys
    assert not {"conv1d_x.weight", "A_log"} & keys
    fresh = MambaVisionMixer(16, window_size=4, scan=order)
    fresh.load_state_dict(mixer.state_dict(), strict=True)
    x = torch.randn(2, 16, 16)
    with torch.no_grad():
        assert torch.equal(fresh(x), mixer(x))


@pytest.mark.parametrize("name", ["test_vim", "test_local_vim"])
def test_weight_decay_groups_still_exclude_a_log_and_d(name: str) -> None:
    model = timm.create_model(name)
    groups = param_groups_weight_decay(model, 0.05, no_weight_decay_list=model.no_weight_decay())
    no_decay = {id(p) for g in groups if g["weight_decay"] == 0.0 for p in g["params"]}
    for block in model.layers:
        assert id(block.mixer.A_log) in no_decay and id(block.mixer.D) in no_decay
        assert id(block.mixer.x_proj.weight) not in no_decay


def test_model_ema_follows_every_route() -> None:
    model = timm.create_model("test_local_vim")
    ema = ModelEmaV3(model, decay=0.5)
    with torch.no_grad():
        model.layers[0].mixer.A_log.add_(2.0)
    before = ema.module.layers[0].mixer.A_log.detach().clone()
    ema.update(model, step=100)
    torch.testing.assert_close(ema.module.layers[0].mixer.A_log, before + 1.0)


@pytest.mark.parametrize("name", ["test_vim", "test_local_vim"])
def test_the_mixers_forward_concatenates_no_parameters(name: str) -> None:
    """Before: 5 cat / stack launches per mixer for the SSM parameters and 2 for the conv (vim_small: 168 of 924)."""
    ops = [o.op for o in profile_model(name, Mode.INFERENCE, batch=2).ops if o.module.startswith("MambaMixer")]
    assert "aten.cat" not in ops
    # What stacks is Vim's bidirectional gather of the activations, one per layer (LocalVim's routes gather by index).
    layers = len(timm.create_model(name, device="meta").layers)
    assert ops.count("aten.stack") == (layers if name == "test_vim" else 0)


def test_keep_vars_gives_the_parameters_themselves_for_torch_jit_trace() -> None:
    """torch.jit.trace (fvcore's counts) finds parameters through state_dict(keep_vars=True); route views there would
    be traced as constants and refused."""
    mixer = MambaMixer(8, num_routes=2)
    parameters = {id(p) for p in mixer.parameters()}
    assert all(id(v) in parameters for v in mixer.state_dict(keep_vars=True).values())
    routes = scans.token_routes(scans.Bidirectional(), 3, 3, torch.device("cpu"))
    x = torch.randn(2, 9, 8)
    with torch.no_grad():
        traced = torch.jit.trace(_OnRoutes(mixer, routes), (x,), check_trace=False)
        torch.testing.assert_close(traced(x), mixer(x, routes))


class _OnRoutes(nn.Module):
    def __init__(self, mixer: MambaMixer, routes: scans.SequenceRoutes) -> None:
        super().__init__()
        self.mixer, self.routes = mixer, routes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mixer(x, self.routes)
