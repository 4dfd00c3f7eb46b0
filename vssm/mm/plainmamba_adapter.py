"""`PlainMambaAdapter`: PlainMamba under a ViT-Adapter, the backbone of the authors' detectors
(ChenhongyiYang/PlainMamba `downstream/mmdetection/mmdet/models/backbones/plain_mamba_adapter.py`, whose modules follow
czczup/ViT-Adapter; Chen et al., "Vision Transformer Adapter for Dense Predictions", ICLR 2023).

A convolutional spatial prior (`spm`) sees the image at strides 4-32; its stride 8/16/32 maps, as one token sequence
c, talk to the plain network's stride-16 tokens x in `interactions` (one per range of layers): an injector (deformable
attention of x into c, scaled by `gamma`) before the range's layers, an extractor (deformable attention of c into x,
then a convolutional FFN) after them; the last block has two more extractors. The pyramid is then c's levels plus x
resampled to each stride, through BatchNorms:

    x (B, 3, H, W), H and W multiples of 32
      spm(x) -> c1 (B, D, H/4, W/4), c2 .. c4 (B, D, H/8 .. H/32) + level_embed; c = tokens of c2, c3, c4
      tokens = PlainMamba.embed(x) (B, H/16 · W/16, D)
      for each block k and its layers [first_k, last_k]:
          tokens = injector(tokens, c); tokens = layers first_k..last_k (tokens); c = extractor(s)(c, tokens)
      level 0: up(c2) + c1 + x↑4;  level 1: c2 + x↑2;  level 2: c3 + x;  level 3: c4 + x↓2  (bilinear)
      -> ad_norm1 .. ad_norm4 -> the levels in `out_indices`, (B, D, H/s, W/s) at s = 4, 8, 16, 32

The deformable attention is mmcv's `MultiScaleDeformableAttention` (its CUDA kernel on GPUs, its PyTorch function
elsewhere), the module the original's is a copy of (same parameter names and init).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from mmcv.cnn import build_norm_layer
from mmcv.ops import MultiScaleDeformableAttention
from mmengine.registry import MODELS
from timm.layers import DropPath, trunc_normal_
from torch import Tensor, nn
from torch.nn import functional as F

from vssm.models import plainmamba

from .backbone import VSSMBackbone
from .families import _plainmamba_checkpoint_filter

__all__ = ["PlainMambaAdapter"]

LEVEL_STRIDES = (4, 8, 16, 32)
INPUT_MULTIPLE = 32  # the coarsest stride: the original pads inputs to it (`Pad(size_divisor=32)`); its FFN needs it
LN_EPS = 1e-6  # the interaction blocks' LayerNorms


def _conv_norm_relu(cin: int, cout: int, stride: int, norm_cfg: dict) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), build_norm_layer(norm_cfg, cout)[1], nn.ReLU(inplace=True)]


class SpatialPrior(nn.Module):
    """The convolutional branch (ResNet-style stem, three strided convs) with 1×1 projections to D:
    x (B, C, H, W) -> c1 (B, D, H/4, W/4) (None without `with_c1`) and c2, c3, c4 at H/8, H/16, H/32."""

    def __init__(self, in_chans: int, width: int, dim: int, norm_cfg: dict, with_c1: bool) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            *_conv_norm_relu(in_chans, width, 2, norm_cfg), *_conv_norm_relu(width, width, 1, norm_cfg),
            *_conv_norm_relu(width, width, 1, norm_cfg), nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
        self.conv2 = nn.Sequential(*_conv_norm_relu(width, 2 * width, 2, norm_cfg))
        self.conv3 = nn.Sequential(*_conv_norm_relu(2 * width, 4 * width, 2, norm_cfg))
        self.conv4 = nn.Sequential(*_conv_norm_relu(4 * width, 4 * width, 2, norm_cfg))
        self.fc1 = nn.Conv2d(width, dim, 1) if with_c1 else None
        self.fc2 = nn.Conv2d(2 * width, dim, 1)
        self.fc3 = nn.Conv2d(4 * width, dim, 1)
        self.fc4 = nn.Conv2d(4 * width, dim, 1)

    def forward(self, x: Tensor) -> tuple[Tensor | None, Tensor, Tensor, Tensor]:
        c1 = self.stem(x)
        c2 = self.conv2(c1)
        c3 = self.conv3(c2)
        c4 = self.conv4(c3)
        return (None if self.fc1 is None else self.fc1(c1)), self.fc2(c2), self.fc3(c3), self.fc4(c4)


class LevelDWConv(nn.Module):
    """One depthwise 3×3 conv applied to each level of a multi-level token sequence (B, ΣL_i, C) separately."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, x: Tensor, shapes: Sequence[tuple[int, int]]) -> Tensor:
        parts = x.split([h * w for h, w in shapes], dim=1)
        return torch.cat([self.dwconv(part.transpose(1, 2).reshape(x.shape[0], x.shape[2], h, w)).flatten(2)
                          .transpose(1, 2) for part, (h, w) in zip(parts, shapes)], dim=1)


class ConvFFN(nn.Module):
    """fc1 -> per-level depthwise conv -> GELU -> fc2."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = LevelDWConv(hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor, shapes: Sequence[tuple[int, int]]) -> Tensor:
        return self.fc2(self.act(self.dwconv(self.fc1(x), shapes)))


class _Attention(nn.Module):
    """LayerNorms on query and features, mmcv's deformable attention between them (batch first, no dropout)."""

    def __init__(self, dim: int, num_heads: int, num_levels: int, num_points: int, ratio: float) -> None:
        super().__init__()
        self.query_norm = nn.LayerNorm(dim, eps=LN_EPS)
        self.feat_norm = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = MultiScaleDeformableAttention(dim, num_heads, num_levels, num_points, dropout=0.0,
                                                  batch_first=True, value_proj_ratio=ratio)

    def attend(self, query: Tensor, feat: Tensor, levels: _Levels, identity: Tensor | float) -> Tensor:
        """identity + attention(norm(query) -> norm(feat) at `levels`)."""
        return self.attn(self.query_norm(query), value=self.feat_norm(feat), identity=identity,
                         reference_points=levels.reference_points, spatial_shapes=levels.spatial_shapes,
                         level_start_index=levels.level_start_index)


class Injector(_Attention):
    """x + gamma · attention(x -> c)."""

    def __init__(self, dim: int, num_heads: int, num_points: int, ratio: float, init_values: float) -> None:
        super().__init__(dim, num_heads, 3, num_points, ratio)
        self.gamma = nn.Parameter(torch.full((dim,), float(init_values)))

    def forward(self, x: Tensor, c: Tensor, levels: _Levels) -> Tensor:
        # identity 0: mmcv's module adds its identity after the attention, the injector scales the attention first
        return x + self.gamma * self.attend(x, c, levels, identity=0.0)


class Extractor(_Attention):
    """c + attention(c -> x), then c + drop_path(ConvFFN(LayerNorm(c)))."""

    def __init__(self, dim: int, num_heads: int, num_points: int, ratio: float, ffn_ratio: float,
                 drop_path: float) -> None:
        super().__init__(dim, num_heads, 1, num_points, ratio)
        self.ffn = ConvFFN(dim, int(dim * ffn_ratio))
        self.ffn_norm = nn.LayerNorm(dim, eps=LN_EPS)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, c: Tensor, x: Tensor, levels: _Levels, c_shapes: Sequence[tuple[int, int]]) -> Tensor:
        c = self.attend(c, x, levels, identity=c)
        return c + self.drop_path(self.ffn(self.ffn_norm(c), c_shapes))


class Interaction(nn.Module):
    """One interaction block: its injector before a range of layers, its extractor(s) after them."""

    def __init__(self, dim: int, num_heads: int, num_points: int, ratio: float, ffn_ratio: float, drop_path: float,
                 init_values: float, extra_extractors: bool) -> None:
        super().__init__()
        self.injector = Injector(dim, num_heads, num_points, ratio, init_values)
        self.extractor = Extractor(dim, num_heads, num_points, ratio, ffn_ratio, drop_path)
        self.extra_extractors = nn.Sequential(*(
            Extractor(dim, num_heads, num_points, ratio, ffn_ratio, drop_path) for _ in range(2)
        )) if extra_extractors else None

    def extract(self, c: Tensor, x: Tensor, levels: _Levels, c_shapes: Sequence[tuple[int, int]]) -> Tensor:
        c = self.extractor(c, x, levels, c_shapes)
        for extractor in self.extra_extractors or ():
            c = extractor(c, x, levels, c_shapes)
        return c


class _Levels:
    """What the deformable attention reads: the (h, w) of each level of the attended sequence, where each level
    starts in it, and the queries' reference points (1, Lq, 1, 2), cell centres in [0, 1] (x, y)."""

    def __init__(self, value_shapes: Sequence[tuple[int, int]], query_shapes: Sequence[tuple[int, int]],
                 like: Tensor) -> None:
        self.spatial_shapes = torch.as_tensor(value_shapes, dtype=torch.long, device=like.device)
        sizes = self.spatial_shapes.prod(1)
        self.level_start_index = torch.cat((sizes.new_zeros(1), sizes.cumsum(0)[:-1]))
        points = []
        for h, w in query_shapes:
            y, x = torch.meshgrid(torch.linspace(0.5, h - 0.5, h, dtype=like.dtype, device=like.device) / h,
                                  torch.linspace(0.5, w - 0.5, w, dtype=like.dtype, device=like.device) / w,
                                  indexing="ij")
            points.append(torch.stack((x.reshape(-1), y.reshape(-1)), -1))
        self.reference_points = torch.cat(points)[None, :, None]


def _even_ranges(depth: int, count: int = 4) -> list[list[int]]:
    """`count` (at most `depth`) consecutive ranges of layers as even as they split: the released [[0, 5], ...,
    [18, 23]] at depth 24."""
    count = min(count, depth)
    ends = [depth * (k + 1) // count - 1 for k in range(count)]
    return [[0 if k == 0 else ends[k - 1] + 1, end] for k, end in enumerate(ends)]


@MODELS.register_module()
class PlainMambaAdapter(VSSMBackbone):
    """PlainMamba with the authors' ViT-Adapter (`PlainMambaAdapter` of their detection code): four maps of D channels
    at strides 4, 8, 16, 32 (`out_indices` picks among them: the RetinaNet configs take 1-3, and the modules only
    level 0 needs, `spm.fc1`, `up`, `ad_norm1`, are then not built). The network keeps all its layers and drops its
    final norm (the original's `final_norm=False`).

    Args:
        model: a PlainMamba timm name ('plainmamba_l1', 'plainmamba_l2', 'plainmamba_l3', 'test_plainmamba').
        interaction_indexes: [first, last] layer of each interaction block, consecutive ranges covering every layer
            (default: four even ranges, the released configs' [[0, 5], [6, 11], [12, 17], [18, 23]] at depth 24).
        conv_inplane: width of the spatial prior's stem (64).
        n_points: sampling points per head and level of the deformable attention (4).
        deform_num_heads: its heads (a divisor of D: 6 for L1 / L2, 8 for L3 in the released configs).
        deform_ratio: its value projection's width over D (1.0).
        cffn_ratio: the extractors' FFN width over D (0.25).
        init_values: the injectors' initial `gamma` (0: the adapter starts as the plain network).
        out_indices: pyramid levels to return, from 0..3 (default all).
        norm_cfg: mmcv norm of the spatial prior and of `ad_norm1..4` (the original: SyncBN).
        drop_path_rate: the layers' stochastic depth (linear over layers) and the extractors' (this rate).
        frozen_stages, norm_eval, with_cp, init_cfg: as `VSSMBackbone` (frozen_stages freezes the network's stem and
            first layers; the adapter's modules train). `init_cfg=dict(type='Pretrained', checkpoint=...)` loads an
            ImageNet checkpoint (the adapter initialised fresh) or, with `prefix='backbone.'`, a detector of the
            original code (every key, adapter included, under the original's names).
    """

    models = ("plainmamba_*", "test_plainmamba")
    out_norm = False
    checkpoint_filter = staticmethod(_plainmamba_checkpoint_filter)

    def __init__(
        self,
        model: str,
        interaction_indexes: Sequence[Sequence[int]] | None = None,
        conv_inplane: int = 64,
        n_points: int = 4,
        deform_num_heads: int = 6,
        deform_ratio: float = 1.0,
        cffn_ratio: float = 0.25,
        init_values: float = 0.0,
        out_indices: Sequence[int] | None = None,
        norm_cfg: dict | None = None,
        drop_path_rate: float | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs.pop("out_norm", None):
            raise ValueError("out_norm: PlainMambaAdapter's levels go through its own BatchNorms (ad_norm1..4)")
        super().__init__(model, out_indices=out_indices, out_norm=False, drop_path_rate=drop_path_rate, **kwargs)
        net = self._net
        dim, depth = net.embed_dim, len(net.layers)
        self.interaction_indexes = self._check_interaction_indexes(interaction_indexes, depth)
        if isinstance(deform_num_heads, bool) or not isinstance(deform_num_heads, int) or deform_num_heads <= 0 \
                or dim % deform_num_heads:
            raise ValueError(f"deform_num_heads: expected a divisor of {model}'s width {dim}, got {deform_num_heads!r}")
        norm_cfg = dict(type="SyncBN", requires_grad=True) if norm_cfg is None else norm_cfg
        with_c1 = 0 in self.out_indices
        rate = drop_path_rate or 0.0  # the variants' own rate is 0

        self.level_embed = nn.Parameter(torch.zeros(3, dim))
        self.spm = SpatialPrior(net.in_chans, conv_inplane, dim, norm_cfg, with_c1)
        blocks = len(self.interaction_indexes)
        self.interactions = nn.Sequential(*(
            Interaction(dim, deform_num_heads, n_points, deform_ratio, cffn_ratio, rate, init_values, k == blocks - 1)
            for k in range(blocks)))
        self.up = nn.ConvTranspose2d(dim, dim, 2, 2) if with_c1 else None
        for level in range(len(LEVEL_STRIDES)):
            norm = build_norm_layer(norm_cfg, dim)[1] if level in self.out_indices else None
            self.add_module(f"ad_norm{level + 1}", norm)
        self._init_adapter()

        # The original builds every module: a checkpoint's keys of the unbuilt ones are not ours to load.
        unbuilt = () if with_c1 else ("spm.fc1.", "up.", "ad_norm1.")
        unbuilt += tuple(f"ad_norm{level + 1}." for level in range(1, 4) if level not in self.out_indices)
        self._pruned_prefixes += unbuilt
        self._adapter_prefixes = ("level_embed", "spm.", "interactions.", "up.", "ad_norm")

    def _init_adapter(self) -> None:
        """The original's init: trunc-normal(0.02) Linears, He-normal (fan-out) convs, zero biases, unit norms; mmcv's
        deformable-attention init (sampling offsets on rings, uniform attention, Xavier projections); normal(0, 1)
        level embedding."""
        for module in [self.spm, self.up, self.interactions]:
            for m in module.modules() if module is not None else ():
                if isinstance(m, nn.Linear):
                    trunc_normal_(m.weight, std=0.02)
                    nn.init.zeros_(m.bias)
                elif isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
                    fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                    nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
        for m in self.interactions.modules():
            if isinstance(m, MultiScaleDeformableAttention):
                m.init_weights()
        nn.init.normal_(self.level_embed)

    @staticmethod
    def _check_interaction_indexes(indexes: Sequence[Sequence[int]] | None, depth: int) -> list[list[int]]:
        if indexes is None:
            return _even_ranges(depth)
        ranges = [list(pair) for pair in indexes] if isinstance(indexes, Sequence) else []
        ends = [-1] + [pair[1] for pair in ranges if len(pair) == 2]
        valid = ranges and len(ends) == len(ranges) + 1 and ends[-1] == depth - 1 and all(
            pair[0] == end + 1 and pair[0] <= pair[1] for pair, end in zip(ranges, ends))
        if not valid:
            raise ValueError(f"interaction_indexes: expected [first, last] layer ranges, consecutive from 0 and "
                             f"covering all {depth} layers, e.g. {_even_ranges(depth)}; got {indexes!r}")
        return ranges

    # ------------------------------------------------------------------------------------------------- hooks

    @staticmethod
    def feature_info(net: plainmamba.PlainMamba) -> list[dict[str, Any]]:
        return [{"num_chs": net.embed_dim, "reduction": stride} for stride in LEVEL_STRIDES]

    @staticmethod
    def prune_network(net: plainmamba.PlainMamba, indices: Sequence[int]) -> None:
        """The classifier and the final norm; every layer stays."""
        net.prune_intermediate_layers(len(net.layers) - 1, prune_norm=True, prune_head=True)

    # ------------------------------------------------------------------------------------------------- forward

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """x: (B, C, H, W), H and W multiples of 32 -> the levels in `out_indices`, (B, D, H / s, W / s) at strides
        s = 4, 8, 16, 32."""
        self._point_network()
        net = self._net
        net.check_input(x)
        if x.shape[2] % INPUT_MULTIPLE or x.shape[3] % INPUT_MULTIPLE:
            raise ValueError(f"PlainMambaAdapter takes images whose sides are multiples of {INPUT_MULTIPLE} (mmdet's "
                             f"pad_size_divisor=32), got {tuple(x.shape[2:])}")
        c1, c2, c3, c4 = self.spm(x)
        c_maps = (c2, c3, c4)
        c_shapes = [tuple(m.shape[2:]) for m in c_maps]
        c = torch.cat([m.flatten(2).transpose(1, 2) + embed for m, embed in zip(c_maps, self.level_embed)], dim=1)

        tokens, grid = net.embed(x)
        to_c = _Levels(c_shapes, [grid], tokens)  # injector: x's queries read c's three levels
        to_x = _Levels([grid], c_shapes, tokens)  # extractors: c's queries read x
        for block, (first, last) in zip(self.interactions, self.interaction_indexes):
            tokens = block.injector(tokens, c, to_c)
            tokens, _ = net.forward_layers(tokens, grid, num_layers=last + 1, start=first)
            c = block.extract(c, tokens, to_x, c_shapes)

        batch, dim = x.shape[0], tokens.shape[2]
        c2, c3, c4 = (part.transpose(1, 2).reshape(batch, dim, *shape)
                      for part, shape in zip(c.split([h * w for h, w in c_shapes], dim=1), c_shapes))
        x3 = tokens.transpose(1, 2).reshape(batch, dim, *grid)
        levels = {
            1: c2 + F.interpolate(x3, scale_factor=2, mode="bilinear", align_corners=False),
            2: c3 + x3,
            3: c4 + F.interpolate(x3, scale_factor=0.5, mode="bilinear", align_corners=False),
        }
        if c1 is not None:
            levels[0] = self.up(c2) + c1 + F.interpolate(x3, scale_factor=4, mode="bilinear", align_corners=False)
        return tuple(getattr(self, f"ad_norm{i + 1}")(levels[i]).contiguous() for i in self.out_indices)
