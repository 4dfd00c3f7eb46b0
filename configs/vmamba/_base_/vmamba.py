# VMamba's backbone in the detection and segmentation configs of this folder, one entry a variant: `tiny` replaces the
# base detector's or segmentor's backbone; the other variants are what their configs change in it (network, released
# ImageNet checkpoint, drop path as MzeroMiko/VMamba detection/ and segmentation/configs/vssm1/ give them).
# A config reads `_base_.vmamba.backbone.<variant>` and its last line deletes `_base_.vmamba`: it is a helper shared by
# the configs, not a key of any merged config.
vmamba = dict(backbone=dict(
    tiny=dict(
        _delete_=True, type='VMambaBackbone', model='vmamba_tiny', out_indices=(0, 1, 2, 3), drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint='https://github.com/MzeroMiko/VMamba/releases/download/%23v2cls/vssm1_tiny_0230s_ckpt_epoch_264.pth')),
    tiny_s2l5=dict(model='vmamba_tiny_s2l5', init_cfg=dict(checkpoint='https://github.com/MzeroMiko/VMamba/releases/download/%23v2cls/vssm_tiny_0230_ckpt_epoch_262.pth')),
    small=dict(model='vmamba_small', drop_path_rate=0.3, init_cfg=dict(checkpoint='https://github.com/MzeroMiko/VMamba/releases/download/%23v2cls/vssm_small_0229_ckpt_epoch_222.pth')),
    base=dict(model='vmamba_base', drop_path_rate=0.6, init_cfg=dict(checkpoint='https://github.com/MzeroMiko/VMamba/releases/download/%23v2cls/vssm_base_0229_ckpt_epoch_237.pth'))))
