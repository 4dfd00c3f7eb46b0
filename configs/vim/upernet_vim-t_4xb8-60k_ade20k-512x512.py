# Vim-Ti + UperNet on ADE20K 512 x 512: hustvl/Vim seg/configs/vim/upernet/upernet_vim_tiny_24_512_slide_60k.py
# (BEiT's recipe). The backbone runs without class token at img_size 512 (the checkpoint's middle class token and its
# position entry are dropped, the 14 x 14 position embedding resampled to 32 x 32); the mixer outputs of blocks 5, 11,
# 17, 23 go through the multi-scale adapter to strides 4-32. UperNet and FCN heads of 192 channels; AdamW lr 1e-4,
# wd 0.05, layer decay 0.92 over the 24 blocks; 1500 linear warm-up iterations, then poly (power 1) to 60k
# iterations; 4 GPUs x 8 images, mixed precision; slide inference (512, stride 341). Vim's training script overrides
# lr 2e-4 and wd 0.1 on its command line. Reported (paper, with the earlier non-middle-class-token backbone): 41.0 mIoU.
_base_ = [
    'mmseg::_base_/models/upernet_r50.py', 'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py', 'mmseg::_base_/schedules/schedule_160k.py', './_base_/vim.py'
]

custom_imports = dict(imports=['vssm.mm'], allow_failed_imports=False)

crop_size = (512, 512)
model = dict(
    pretrained=None,
    data_preprocessor=dict(size=crop_size),
    backbone=dict(_base_.vim.backbone.tiny, img_size=512, residual_in_fp32=False),
    decode_head=dict(in_channels=[192, 192, 192, 192], channels=192, num_classes=150),
    auxiliary_head=dict(in_channels=192, num_classes=150),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)))

optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='VSSMLayerDecayOptimizerConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.92, num_layers=24))

max_iters = 60000
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=max_iters, by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=1000)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=1000, max_keep_ckpts=4, save_best='mIoU'))
train_dataloader = dict(batch_size=8)
del _base_.vim  # ./_base_/vim.py's helper, not a config key
