"""The original VMamba's released configurations and state-dict layout (spec sections 1 and 4), written from the
spec's key table, independently of our model code. Shared by the VMamba tests."""

from __future__ import annotations

import math

# name -> (depths, dims, d_state, expand, v0): the released configurations (spec section 1)
RELEASED = {
    "vmamba_tiny_s1l8": ((2, 2, 8, 2), 96, 1, 1.0, False),
    "vmamba_tiny_s2l5": ((2, 2, 5, 2), 96, 1, 2.0, False),
    "vmamba_small_s2l15": ((2, 2, 15, 2), 96, 1, 2.0, False),
    "vmamba_base_s2l15": ((2, 2, 15, 2), 128, 1, 2.0, False),
    "vmamba_small_s1l20": ((2, 2, 20, 2), 96, 1, 1.0, False),
    "vmamba_base_s1l20": ((2, 2, 20, 2), 128, 1, 1.0, False),
    "vmamba_tiny_v0": ((2, 2, 9, 2), 96, 16, 2.0, True),
    "vmamba_small_v0": ((2, 2, 27, 2), 96, 16, 2.0, True),
    "vmamba_base_v0": ((2, 2, 27, 2), 128, 16, 2.0, True),
}
ALIASES = {"vmamba_tiny": "vmamba_tiny_s1l8", "vmamba_small": "vmamba_small_s2l15", "vmamba_base": "vmamba_base_s2l15"}
# spec section 4: tensors per released state dict
TENSOR_COUNTS = {"vmamba_tiny_v0": 212, "vmamba_small_v0": 446, "vmamba_base_v0": 446, "vmamba_tiny_s2l5": 222,
                 "vmamba_small_s2l15": 402, "vmamba_base_s2l15": 402, "vmamba_tiny_s1l8": 276,
                 "vmamba_small_s1l20": 492, "vmamba_base_s1l20": 492}

Shapes = dict[str, tuple[int, ...]]


def official_shapes(depths, dims, d_state, expand, v0, num_classes=1000) -> Shapes:
    """The original `VSSM.state_dict()` keys and shapes for a configuration (spec section 4)."""
    shapes: Shapes = {}
    c0 = dims
    if v0:
        shapes.update({"patch_embed.0.weight": (c0, 3, 4, 4), "patch_embed.0.bias": (c0,)})
        shapes.update({"patch_embed.2.weight": (c0,), "patch_embed.2.bias": (c0,)})
    else:
        shapes.update({"patch_embed.0.weight": (c0 // 2, 3, 3, 3), "patch_embed.0.bias": (c0 // 2,)})
        shapes.update({"patch_embed.2.weight": (c0 // 2,), "patch_embed.2.bias": (c0 // 2,)})
        shapes.update({"patch_embed.5.weight": (c0, c0 // 2, 3, 3), "patch_embed.5.bias": (c0,)})
        shapes.update({"patch_embed.7.weight": (c0,), "patch_embed.7.bias": (c0,)})
    for s, depth in enumerate(depths):
        c = dims * 2**s
        e, r, n = int(expand * c), math.ceil(c / 16), d_state
        for j in range(depth):
            p = f"layers.{s}.blocks.{j}."
            shapes.update({p + "norm.weight": (c,), p + "norm.bias": (c,)})
            shapes[p + "op.x_proj_weight"] = (4, r + 2 * n, e)
            shapes[p + "op.A_logs"] = (4 * e, n)
            shapes[p + "op.Ds"] = (4 * e,)
            shapes[p + "op.dt_projs_weight"] = (4, e, r)
            shapes[p + "op.dt_projs_bias"] = (4, e)
            shapes.update({p + "op.out_norm.weight": (e,), p + "op.out_norm.bias": (e,)})
            shapes[p + "op.in_proj.weight"] = (2 * e if v0 else e, c)
            shapes[p + "op.conv2d.weight"] = (e, 1, 3, 3)
            if v0:
                shapes[p + "op.conv2d.bias"] = (e,)
            shapes[p + "op.out_proj.weight"] = (c, e)
            if not v0:
                shapes.update({p + "norm2.weight": (c,), p + "norm2.bias": (c,)})
                shapes.update({p + "mlp.fc1.weight": (4 * c, c), p + "mlp.fc1.bias": (4 * c,)})
                shapes.update({p + "mlp.fc2.weight": (c, 4 * c), p + "mlp.fc2.bias": (c,)})
        if s < len(depths) - 1:
            p = f"layers.{s}.downsample."
            if v0:
                shapes[p + "reduction.weight"] = (2 * c, 4 * c)
                shapes.update({p + "norm.weight": (4 * c,), p + "norm.bias": (4 * c,)})
            else:
                shapes.update({p + "1.weight": (2 * c, c, 3, 3), p + "1.bias": (2 * c,)})
                shapes.update({p + "3.weight": (2 * c,), p + "3.bias": (2 * c,)})
    c3 = dims * 2 ** (len(depths) - 1)
    shapes.update({"classifier.norm.weight": (c3,), "classifier.norm.bias": (c3,)})
    shapes.update({"classifier.head.weight": (num_classes, c3), "classifier.head.bias": (num_classes,)})
    return shapes
