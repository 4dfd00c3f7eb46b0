# MSVMamba's backbone in the detection and segmentation configs of this folder, one entry a variant: `micro` replaces
# the base detector's or segmentor's backbone; `tiny` is what its configs change in it (YuHengsss/MSVMamba
# detection/ and segmentation/configs/ms_vssm/ @ c394019: `MM_VSSM` with the classification configs' switches; drop
# path 0.1, the original's default, where a config gives none).
# The ImageNet checkpoints are published as Google Drive folders (the README's "log&ckpt" links), which mmengine
# cannot download: fetch the file and add `init_cfg=dict(type='Pretrained', checkpoint=PATH)` to the backbone.
# A config reads `_base_.msvmamba.backbone.<variant>` and its last line deletes `_base_.msvmamba`: it is a helper
# shared by the configs, not a key of any merged config.
msvmamba = dict(backbone=dict(
    micro=dict(
        _delete_=True, type='MSVMambaBackbone', model='msvmamba_micro', out_indices=(0, 1, 2, 3), drop_path_rate=0.1),
    tiny=dict(model='msvmamba_tiny')))
