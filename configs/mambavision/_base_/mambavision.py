# MambaVision's backbone in the detection and segmentation configs of this folder, one entry a variant: `tiny`
# replaces the base detector's or segmentor's backbone (the configs add the windows and drop path of their task);
# the other variants are what their configs change in it (network and released ImageNet checkpoint).
# A config reads `_base_.mambavision.backbone.<variant>` and its last line deletes `_base_.mambavision`: it is a helper
# shared by the configs, not a key of any merged config.
mambavision = dict(backbone=dict(
    tiny=dict(
        _delete_=True, type='MambaVisionBackbone', model='mambavision_tiny', out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint='https://huggingface.co/nvidia/MambaVision-T-1K/resolve/main/mambavision_tiny_1k.pth.tar')),
    small=dict(model='mambavision_small', init_cfg=dict(checkpoint='https://huggingface.co/nvidia/MambaVision-S-1K/resolve/main/mambavision_small_1k.pth.tar')),
    base=dict(model='mambavision_base', init_cfg=dict(checkpoint='https://huggingface.co/nvidia/MambaVision-B-1K/resolve/main/mambavision_base_1k.pth.tar')),
    large3_512_21k=dict(
        model='mambavision_large3_512_21k',
        init_cfg=dict(checkpoint='https://huggingface.co/nvidia/MambaVision-L3-512-21K/resolve/main/mambavision_L3_21k_740m_512.pth.tar'))))
