# Vim-S + Mask R-CNN FPN 1x: as Vim-Ti, with Vim-S's ViTDet layer decay 0.837
# (hustvl/Vim det/projects/ViTDet/configs/COCO/cascade_mask_rcnn_vimdet_s_100ep.py).
_base_ = ['./mask-rcnn_vim-t_fpn_1x_coco.py', './_base_/vim.py']

model = dict(backbone=_base_.vim.backbone.small, neck=dict(in_channels=[384, 384, 384, 384]))
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.837))
del _base_.vim  # ./_base_/vim.py's helper, not a config key
