"""vssm's backbones for MMDetection and MMSegmentation (MMEngine registration; not imported by `import vssm`).

A config finds them with

    custom_imports = dict(imports=['vssm.mm'], allow_failed_imports=False)
    model = dict(backbone=dict(type='VMambaBackbone', model='vmamba_tiny', drop_path_rate=0.2,
                               init_cfg=dict(type='Pretrained', checkpoint=URL_OR_PATH)))

Registered in mmengine's root registries (mmdet's and mmseg's registries look there through their parent), so
importing this package imports neither mmdet nor mmseg:

* MODELS: `VimBackbone`, `VMambaBackbone`, `LocalVimBackbone`, `LocalVMambaBackbone`, `MambaVisionBackbone`,
  `UMambaBackbone` (all `VSSMBackbone`s).
* OPTIM_WRAPPER_CONSTRUCTORS: `VSSMLayerDecayOptimizerConstructor`.
"""

from .backbone import VSSMBackbone
from .families import (
    LocalVimBackbone,
    LocalVMambaBackbone,
    MambaVisionBackbone,
    UMambaBackbone,
    VimBackbone,
    VMambaBackbone,
)
from .layer_decay import VSSMLayerDecayOptimizerConstructor

__all__ = [
    "LocalVMambaBackbone",
    "LocalVimBackbone",
    "MambaVisionBackbone",
    "UMambaBackbone",
    "VMambaBackbone",
    "VSSMBackbone",
    "VSSMLayerDecayOptimizerConstructor",
    "VimBackbone",
]
