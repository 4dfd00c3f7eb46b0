# Vim-S + Mask R-CNN FPN, 3x multi-scale: as Vim-Ti, with layer decay 0.837.
_base_ = './mask-rcnn_vim-t_fpn_ms-crop-3x_coco.py'

model = dict(
    backbone=dict(model='vim_small', init_cfg=dict(checkpoint='https://huggingface.co/hustvl/Vim-small-midclstok/resolve/main/vim_s_midclstok_80p5acc.pth')),
    neck=dict(in_channels=[384, 384, 384, 384]))
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.837))
