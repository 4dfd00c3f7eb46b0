"""vssm: vision state-space backbones on one scan-order module (`scans`) and one selective-scan op (`kernels`).

Importing `vssm` registers every family with timm (`timm.create_model("vim_small")`).
"""

__version__ = "0.1.0"
