"""vssm's backbones for MMDetection and MMSegmentation (MMEngine registration; not imported by `import vssm`).

A config finds them with

    custom_imports = dict(imports=['vssm.mm'], allow_failed_imports=False)
    model = dict(backbone=dict(type='VMambaBackbone', model='vmamba_tiny', drop_path_rate=0.2,
                               init_cfg=dict(type='Pretrained', checkpoint=URL_OR_PATH)))

Registered in mmengine's root registries (mmdet's and mmseg's registries look there through their parent), so
importing this package imports neither mmdet nor mmseg:

* MODELS: `VimBackbone`, `VMambaBackbone`, `LocalVimBackbone`, `LocalVMambaBackbone`, `MSVMambaBackbone`,
  `GroupMambaBackbone`, `MambaVisionBackbone`, `PlainMambaBackbone`, `UMambaBackbone` (all `VSSMBackbone`s);
  `PlainMambaAdapter` (PlainMamba under the authors' ViT-Adapter, their detectors' backbone; a `VSSMBackbone`);
  `SimpleFPN` (ViTDet's neck, for a plain backbone's single map) and the norm `LN2d` (ViTDet's, for `norm_cfg`):
  mmdet's pip package does not ship its `projects/ViTDet`.
* OPTIM_WRAPPER_CONSTRUCTORS: `VSSMLayerDecayOptimizerConstructor`.
"""

from .backbone import VSSMBackbone
from .families import (
    GroupMambaBackbone,
    LocalVimBackbone,
    LocalVMambaBackbone,
    MambaVisionBackbone,
    MSVMambaBackbone,
    PlainMambaBackbone,
    UMambaBackbone,
    VimBackbone,
    VMambaBackbone,
)
from .layer_decay import VSSMLayerDecayOptimizerConstructor
from .layer_norm_2d import LN2d
from .plainmamba_adapter import PlainMambaAdapter
from .simple_fpn import SimpleFPN

__all__ = [
    "GroupMambaBackbone",
    "LN2d",
    "LocalVMambaBackbone",
    "LocalVimBackbone",
    "MSVMambaBackbone",
    "MambaVisionBackbone",
    "PlainMambaAdapter",
    "PlainMambaBackbone",
    "SimpleFPN",
    "UMambaBackbone",
    "VMambaBackbone",
    "VSSMBackbone",
    "VSSMLayerDecayOptimizerConstructor",
    "VimBackbone",
]
