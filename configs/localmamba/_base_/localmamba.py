# LocalMamba's backbones in the detection and segmentation configs of this folder, one entry a variant:
# `vmamba_tiny` (LocalVMamba-T) and `vim_tiny` (LocalVim-T) replace the base detector's or segmentor's backbone (the
# configs add the input size and outputs of their task; LocalVMamba's drop path is the detection configs', the
# segmentation configs set theirs); the small variants are what their configs change in them (network and released
# ImageNet checkpoint; LocalVim-S has none to download, LocalMamba#43).
# A config reads `_base_.localmamba.backbone.<variant>` and its last line deletes `_base_.localmamba`: it is a helper
# shared by the configs, not a key of any merged config.
localmamba = dict(backbone=dict(
    vmamba_tiny=dict(
        _delete_=True, type='LocalVMambaBackbone', model='local_vssm_tiny', out_indices=(0, 1, 2, 3),
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint='https://github.com/hunto/LocalMamba/releases/download/v1.0.0/local_vssm_tiny.ckpt')),
    vmamba_small=dict(model='local_vssm_small', init_cfg=dict(checkpoint='https://github.com/hunto/LocalMamba/releases/download/v1.0.0/local_vssm_small.ckpt')),
    vim_tiny=dict(
        _delete_=True, type='LocalVimBackbone', model='local_vim_tiny', drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint='https://github.com/hunto/LocalMamba/releases/download/v1.0.0/local_vim_tiny.ckpt')),
    vim_small=dict(model='local_vim_small', init_cfg=None)))
