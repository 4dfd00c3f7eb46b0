# LocalVim-S + ViTDet's Mask R-CNN, LSJ 1024: hunto/LocalMamba detection/configs/local_mamba/
# vitdet_cascade_mask-rcnn_local_vim_small_lsj-100e.py (the tiny recipe at width 384 with LocalVim-T's searched
# directions, which is also our local_vim_small; 1 image per GPU). The original loads no checkpoint and LocalVim-S
# weights are not downloadable (the README's link is LocalVMamba-S's file, LocalMamba#43): put yours in
# model.backbone.init_cfg = dict(type='Pretrained', checkpoint=...).
_base_ = ['./mask-rcnn_local-vim-t_simple-fpn_lsj-100e_coco.py', './_base_/localmamba.py']

model = dict(
    backbone=_base_.localmamba.backbone.vim_small,
    neck=dict(backbone_channel=384, in_channels=[96, 192, 384, 384]))

train_dataloader = dict(batch_size=1)
del _base_.localmamba  # ./_base_/localmamba.py's helper, not a config key
