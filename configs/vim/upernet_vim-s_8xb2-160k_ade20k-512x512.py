# Vim-S + UperNet with Vim's optimizer on mmseg's standard 160k ADE20K schedule (8 GPUs x 2 images).
_base_ = './upernet_vim-s_4xb8-60k_ade20k-512x512.py'

max_iters = 160000
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=max_iters, by_epoch=False),
]
train_cfg = dict(max_iters=max_iters, val_interval=16000)
default_hooks = dict(checkpoint=dict(interval=16000))
train_dataloader = dict(batch_size=2)
