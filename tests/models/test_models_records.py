"""What each family records for the tools (`vssm.models._records`) names its own registered variants and real
baselines, so that a typo in a family's file fails here rather than as a missing row in the report."""

from __future__ import annotations

import pytest
import timm

from vssm import zoo
from vssm.models._records import PublishedCount, SpeedTarget, TimedNetwork

FAMILIES = sorted(zoo.families())


def _own_variants(family: str) -> tuple[set[str], set[str]]:
    """(released variants, test variants) of a family."""
    tests = {name for name in zoo.test_variants() if zoo.family_of(name) == family}
    return set(zoo.families()[family]), tests


def _model_of(network: str | TimedNetwork) -> str | None:
    """The registered model a speed target's network is, None for a network with a builder of its own."""
    if isinstance(network, str):
        return network
    return None if network.build is not None else network.model or network.name


@pytest.mark.parametrize("family", FAMILIES)
def test_headline_and_published_counts_name_released_variants(family: str) -> None:
    module = zoo.family_module(family)
    released, _ = _own_variants(family)
    assert getattr(module, "HEADLINE_VARIANT", None) in released | {None}
    counts = getattr(module, "PUBLISHED_COUNTS", {})
    assert set(counts) <= released
    assert all(isinstance(count, PublishedCount) and float(count.reference) > 0 for count in counts.values())


@pytest.mark.parametrize("family", FAMILIES)
def test_golden_fixtures_build_registered_models(family: str) -> None:
    released, tests = _own_variants(family)
    for folder, golden in getattr(zoo.family_module(family), "GOLDEN_FIXTURES", {}).items():
        assert golden.build is not None or golden.model in released | tests, folder


@pytest.mark.parametrize("family", FAMILIES)
def test_speed_targets_time_own_variants_against_timm_models(family: str) -> None:
    module = zoo.family_module(family)
    released, tests = _own_variants(family)
    for attribute, own in (("SPEED_TARGETS", released), ("TEST_SPEED_TARGETS", tests)):
        targets = getattr(module, attribute, ())
        assert all(isinstance(target, SpeedTarget) for target in targets), attribute
        for target in targets:
            ours, baseline = _model_of(target.ours), _model_of(target.baseline)
            assert ours is None or ours in own, (attribute, ours)
            assert baseline is None or timm.is_model(baseline), (attribute, baseline)


def test_an_unknown_family_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"family: expected one of \[.*'vim'.*\], got 'vimm'"):
        zoo.family_module("vimm")
