# Vim-S + Mask R-CNN FPN, 3x multi-scale: as Vim-Ti, with layer decay 0.837.
_base_ = ['./mask-rcnn_vim-t_fpn_ms-crop-3x_coco.py', './_base_/vim.py']

model = dict(backbone=_base_.vim.backbone.small, neck=dict(in_channels=[384, 384, 384, 384]))
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.837))
del _base_.vim  # ./_base_/vim.py's helper, not a config key
