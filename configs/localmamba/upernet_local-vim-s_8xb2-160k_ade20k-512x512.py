# LocalVim-S + UperNet 160k: hunto/LocalMamba segmentation/configs/local_mamba/
# upernet_local_vim-small_8xb2-160k_ade20k-512x512.py (the tiny recipe at width 384; like the original it inherits
# LocalVim-T's searched directions, which is also our local_vim_small). The original loads local_vssm_small.ckpt, the
# LocalVMamba-S file (LocalMamba#43), which does not fit; LocalVim-S weights are not downloadable, so no checkpoint is
# set: put yours in model.backbone.init_cfg = dict(type='Pretrained', checkpoint=...).
_base_ = ['./upernet_local-vim-t_8xb2-160k_ade20k-512x512.py', './_base_/localmamba.py']

model = dict(
    backbone=_base_.localmamba.backbone.vim_small,
    decode_head=dict(in_channels=[384, 384, 384, 384]),
    auxiliary_head=dict(in_channels=384))
del _base_.localmamba  # ./_base_/localmamba.py's helper, not a config key
