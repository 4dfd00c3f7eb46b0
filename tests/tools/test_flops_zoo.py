"""The registry as the tools see it (families, headline variants, names, sizes) and fvcore vs FlopCounterMode."""

from __future__ import annotations

import pytest
import timm

import vssm
from vssm import zoo
from vssm.analysis.flops import Convention, count_flops, fvcore_macs

TEST_VARIANTS = zoo.test_variants()


@pytest.mark.parametrize("name", TEST_VARIANTS)
def test_fvcore_and_flop_counter_mode_agree_on_every_test_variant(name: str) -> None:
    model = zoo.create(name)
    size = zoo.default_input_size(name)
    ours = count_flops(model, size, Convention.MACS, batch=2)
    theirs, by_kind = fvcore_macs(model, size, batch=2)
    assert ours.total == theirs, f"{name}: FlopCounterMode {ours.by_category} vs fvcore {by_kind}"
    assert ours.by_category["scan"] == by_kind["selective_scan"] > 0


def test_every_family_has_a_test_variant_and_a_headline_variant() -> None:
    families = zoo.families()
    assert families and all(zoo.family_of(n) in families for n in TEST_VARIANTS)
    headlines = zoo.headline_variants()
    assert len(headlines) == len(families)
    for family, name in zip(families, headlines):
        assert name in families[family] and not name.startswith(zoo.TEST_PREFIX)
    if "vim" in families:
        assert zoo.headline_variant("vim") == "vim_small"


def test_a_family_without_a_declared_headline_gets_its_smallest_variant(monkeypatch: pytest.MonkeyPatch) -> None:
    family, variants = next(iter(zoo.families().items()))
    monkeypatch.delattr(zoo.family_module(family), "HEADLINE_VARIANT")
    smallest = min(variants, key=zoo.num_params)
    assert zoo.headline_variant(family) == smallest
    with pytest.raises(ValueError, match="family"):
        zoo.headline_variant("no_such_family")


def test_unknown_model_names_suggest_the_closest_registered_ones() -> None:
    name = vssm.list_models()[0]
    typo = name[:-1] + ("x" if name[-1] != "x" else "y")
    with pytest.raises(ValueError, match=rf"unknown vssm model '{typo}'; did you mean .*{name}"):
        zoo.resolve_names([typo])
    assert zoo.resolve_names([name]) == [name]
    with pytest.raises(ValueError, match="did you mean resnet50"):
        zoo.resolve_names(["resnet5O"], allow_timm=True)
    assert zoo.resolve_names(["resnet50"], allow_timm=True) == ["resnet50"]


def test_inputs_smaller_than_the_stride_are_rejected_before_any_weights_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    name = "test_vmamba" if "test_vmamba" in TEST_VARIANTS else TEST_VARIANTS[0]
    devices = []
    create = timm.create_model

    def spy(*args, **kwargs):
        devices.append(str(kwargs.get("device")))
        return create(*args, **kwargs)

    monkeypatch.setattr(timm, "create_model", spy)
    stride = zoo.stride_of(create(name, device="meta"))
    assert stride > 1
    with pytest.raises(ValueError, match=rf"smaller than the model's stride {stride}"):
        zoo.create(name, (3, stride - 1, stride * 4))
    assert devices and set(devices) == {"meta"}


@pytest.mark.parametrize(
    "text,expected",
    [("224", (3, 224, 224)), ("160x224", (3, 160, 224)), ("1x64x96", (1, 64, 96)), (96, (3, 96, 96)),
     ((3, 32, 48), (3, 32, 48))],
)
def test_parse_input_size(text, expected) -> None:
    assert zoo.parse_input_size(text) == expected


@pytest.mark.parametrize("text", ["", "big", "0", "3x0x4", "1x2x3x4"])
def test_parse_input_size_rejects_nonsense(text) -> None:
    with pytest.raises(ValueError, match="input size"):
        zoo.parse_input_size(text)


def test_fixed_size_models_are_rebuilt_for_another_size() -> None:
    fixed = [n for n in TEST_VARIANTS if timm.models.get_pretrained_cfg(n).fixed_input_size]
    if not fixed:
        pytest.skip("no fixed-size test variant registered")
    name = fixed[0]
    channels, height, width = zoo.default_input_size(name)
    size = (channels, height * 2, width * 2)
    result = count_flops(zoo.create(name, size), size, Convention.MACS)
    assert result.total > count_flops(zoo.create(name), zoo.default_input_size(name), Convention.MACS).total
