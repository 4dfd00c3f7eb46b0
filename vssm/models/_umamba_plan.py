"""`UMambaPlan`: the numbers an nnU-Net plan gives a U-Net (features, kernels, strides, blocks per stage, patch size).

A plan is explicit (a standalone user writes it) or read from an nnU-Net `plans.json` configuration, in the
current format (`architecture.arch_kwargs`, nnU-Net >= 2.4) or the 2.1.1 format the original U-Mamba saved
(`UNet_base_num_features`, `conv_kernel_sizes`, `pool_op_kernel_sizes`, ...). Reading a plan needs no nnU-Net.
"""

from __future__ import annotations

import dataclasses
import json
import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def _int(value: object, what: str, minimum: int = 1) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{what}: expected an int, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{what}: expected an int, got {type(value).__name__} {value!r}") from None
    if value < minimum:
        raise ValueError(f"{what}: expected an int >= {minimum}, got {value}")
    return value


def _ints(values: object, what: str, length: int | None = None) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"{what}: expected a sequence of ints, got {type(values).__name__} {values!r}")
    if length is not None and len(values) != length:
        raise ValueError(f"{what}: expected {length} entries, got {len(values)}: {list(values)}")
    return tuple(_int(v, f"{what}[{i}]") for i, v in enumerate(values))


@dataclass(frozen=True)
class UMambaPlan:
    """A U-Net plan with n resolution stages, in nnU-Net's terms.

    Args:
        features_per_stage: (n,) channels of each encoder stage.
        kernel_sizes: (n, ndim) conv kernel per stage (odd sizes).
        strides: (n, ndim) downsampling of each stage's first conv (stage 0 usually 1).
        n_conv_per_stage: (n,) residual blocks per encoder stage, before U-Mamba's block surgery.
        n_conv_per_stage_decoder: (n - 1,) residual blocks per decoder stage, low to high resolution, before surgery.
        patch_size: (ndim,) the training patch; optional for Bot. Enc needs it: it decides which stages use channel
            tokens and their Mamba width. Every stage's stride must divide the map it gets.

    Lists are accepted and stored as tuples. Bad entries raise ValueError/TypeError naming the entry
    (`plan.strides[3]`).
    """

    features_per_stage: tuple[int, ...]
    kernel_sizes: tuple[tuple[int, ...], ...]
    strides: tuple[tuple[int, ...], ...]
    n_conv_per_stage: tuple[int, ...]
    n_conv_per_stage_decoder: tuple[int, ...]
    patch_size: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        features = _ints(self.features_per_stage, "plan.features_per_stage")
        n = len(features)
        if n < 2:
            raise ValueError(f"plan.features_per_stage: a U-Net needs at least 2 stages, got {n}")
        for name, per_axis in (("kernel_sizes", self.kernel_sizes), ("strides", self.strides)):
            if isinstance(per_axis, (str, bytes)) or not isinstance(per_axis, Sequence) or len(per_axis) != n:
                raise ValueError(f"plan.{name}: expected one entry per stage ({n}), got {per_axis!r}")
        ndim = len(self.kernel_sizes[0]) if isinstance(self.kernel_sizes[0], Sequence) else 0
        if ndim not in (2, 3):
            raise ValueError(f"plan.kernel_sizes[0]: expected 2 or 3 sizes (2D or 3D), got {self.kernel_sizes[0]!r}")
        kernels = tuple(_ints(k, f"plan.kernel_sizes[{s}]", ndim) for s, k in enumerate(self.kernel_sizes))
        for s, kernel in enumerate(kernels):
            if any(k % 2 == 0 for k in kernel):
                raise ValueError(f"plan.kernel_sizes[{s}]: expected odd sizes, got {kernel}")
        strides = tuple(_ints(st, f"plan.strides[{s}]", ndim) for s, st in enumerate(self.strides))
        blocks = _ints(self.n_conv_per_stage, "plan.n_conv_per_stage", n)
        decoder = _ints(self.n_conv_per_stage_decoder, "plan.n_conv_per_stage_decoder", n - 1)
        patch = None if self.patch_size is None else _ints(self.patch_size, "plan.patch_size", ndim)
        for name, value in (
            ("features_per_stage", features),
            ("kernel_sizes", kernels),
            ("strides", strides),
            ("n_conv_per_stage", blocks),
            ("n_conv_per_stage_decoder", decoder),
            ("patch_size", patch),
        ):
            object.__setattr__(self, name, value)
        if patch is not None:
            self.feature_map_sizes(patch, what="plan.patch_size")

    # ------------------------------------------------------------------------------------------------ derived

    @property
    def ndim(self) -> int:
        """2 or 3 spatial dimensions."""
        return len(self.kernel_sizes[0])

    @property
    def n_stages(self) -> int:
        return len(self.features_per_stage)

    def total_stride(self) -> tuple[int, ...]:
        """Per axis, the product of all stages' strides (an input must be divisible by it)."""
        return tuple(math.prod(s[axis] for s in self.strides) for axis in range(self.ndim))

    def feature_map_sizes(self, spatial: Sequence[int], what: str = "input") -> list[tuple[int, ...]]:
        """Each stage's output size for an input of `spatial` size.

        Raises ValueError naming the plan entry whose stride does not divide the map it gets.
        """
        size = tuple(spatial)
        if len(size) != self.ndim:
            raise ValueError(f"{what}: expected {self.ndim} spatial sizes for a {self.ndim}D plan, got {size}")
        sizes = []
        for s, stride in enumerate(self.strides):
            if any(d % st for d, st in zip(size, stride)):
                raise ValueError(
                    f"plan.strides[{s}] = {stride} does not divide the map {size} that stage {s} gets from the "
                    f"{what} {tuple(spatial)}; the plan's total stride is {self.total_stride()}"
                )
            size = tuple(d // st for d, st in zip(size, stride))
            sizes.append(size)
        return sizes

    def encoder_blocks(self, block_surgery: bool = True) -> tuple[int, ...]:
        """Blocks per encoder stage; U-Mamba's surgery sets stages ⌈n/2⌉ .. n-1 to one block."""
        n = self.n_stages
        first = math.ceil(n / 2) if block_surgery else n
        return tuple(1 if s >= first else b for s, b in enumerate(self.n_conv_per_stage))

    def decoder_blocks(self, block_surgery: bool = True) -> tuple[int, ...]:
        """Blocks per decoder stage (low to high resolution); the surgery sets stages ⌈(n-1)/2 + 0.5⌉ .. n-2 to one."""
        n = self.n_stages
        first = math.ceil((n - 1) / 2 + 0.5) if block_surgery else n - 1
        return tuple(1 if t >= first else b for t, b in enumerate(self.n_conv_per_stage_decoder))

    def replace(self, **changes: Any) -> UMambaPlan:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain lists (JSON / config friendly); `UMambaPlan(**plan.to_dict())` gives the plan back."""
        return {
            f.name: None if getattr(self, f.name) is None else json.loads(json.dumps(getattr(self, f.name)))
            for f in dataclasses.fields(self)
        }

    # ------------------------------------------------------------------------------------------------ nnU-Net

    @classmethod
    def from_nnunet(cls, configuration: Mapping[str, Any]) -> UMambaPlan:
        """From one resolved configuration of an nnU-Net plans.json (e.g. `plans["configurations"]["2d"]`).

        Reads both the current format (`architecture.arch_kwargs`) and the nnU-Net 2.1.1 format of the original
        U-Mamba: features_per_stage[s] = min(UNet_base_num_features · 2^s, unet_max_num_features).
        """
        if "patch_size" not in configuration:
            raise ValueError("nnU-Net configuration: no 'patch_size' entry (is this a plans.json configuration?)")
        if "architecture" in configuration:
            kwargs = configuration["architecture"]["arch_kwargs"]
            blocks = kwargs.get("n_conv_per_stage", kwargs.get("n_blocks_per_stage"))
            if blocks is None:
                raise ValueError("nnU-Net arch_kwargs: neither 'n_conv_per_stage' nor 'n_blocks_per_stage' is given")
            return cls(
                features_per_stage=kwargs["features_per_stage"],
                kernel_sizes=kwargs["kernel_sizes"],
                strides=kwargs["strides"],
                n_conv_per_stage=blocks,
                n_conv_per_stage_decoder=kwargs["n_conv_per_stage_decoder"],
                patch_size=configuration["patch_size"],
            )
        missing = [k for k in _LEGACY_KEYS if k not in configuration]
        if missing:
            raise ValueError(f"nnU-Net configuration: neither 'architecture' nor the 2.1.1 keys {missing} are given")
        n = len(configuration["conv_kernel_sizes"])
        base, top = configuration["UNet_base_num_features"], configuration["unet_max_num_features"]
        return cls(
            features_per_stage=[min(base * 2**s, top) for s in range(n)],
            kernel_sizes=configuration["conv_kernel_sizes"],
            strides=configuration["pool_op_kernel_sizes"],
            n_conv_per_stage=configuration["n_conv_per_stage_encoder"],
            n_conv_per_stage_decoder=configuration["n_conv_per_stage_decoder"],
            patch_size=configuration["patch_size"],
        )

    @classmethod
    def from_nnunet_plans(cls, plans: Mapping[str, Any] | str | Path, configuration: str) -> UMambaPlan:
        """From a whole plans.json (dict or path) and a configuration name, resolving `inherits_from`."""
        if isinstance(plans, (str, Path)):
            plans = json.loads(Path(plans).read_text())
        configurations = plans.get("configurations", {})
        chain, name = [], configuration
        while name is not None:
            if name not in configurations:
                raise ValueError(f"nnU-Net plans: no configuration {name!r}; available: {sorted(configurations)}")
            if name in chain:
                raise ValueError(f"nnU-Net plans: configuration {configuration!r} inherits from itself via {chain}")
            chain.append(name)
            name = configurations[name].get("inherits_from")
        resolved: dict[str, Any] = {}
        for name in reversed(chain):
            resolved.update(configurations[name])
        return cls.from_nnunet(resolved)


_LEGACY_KEYS = (
    "UNet_base_num_features",
    "unet_max_num_features",
    "conv_kernel_sizes",
    "pool_op_kernel_sizes",
    "n_conv_per_stage_encoder",
    "n_conv_per_stage_decoder",
)
