"""The main job (`make report`): build the zoo's registered models through timm, run them, and print a table.

The tools issue grows this into the full zoo report (FLOPs, throughput, model-card tables).
"""

from __future__ import annotations

import timm
import torch

import vssm


def main() -> int:
    names = vssm.list_models("test_*")
    print(f"vssm {vssm.__version__}, torch {torch.__version__}, timm {timm.__version__}")
    if not names:
        print("no vssm model families are registered yet")
        return 0
    print(f"{'model':<28}{'params':>12}  output")
    for name in names:
        model = timm.create_model(name).eval()
        size = model.pretrained_cfg.get("input_size", (3, 224, 224))
        with torch.no_grad():
            out = model(torch.randn(1, *size))
        params = sum(p.numel() for p in model.parameters())
        print(f"{name:<28}{params:>12,}  {tuple(out.shape)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
