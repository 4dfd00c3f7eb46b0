# U-Mamba Bot (2D) on a 2D medical dataset in mmseg's Synapse layout (img_dir/{train,val}/*.jpg slices,
# ann_dir/{train,val}/*.png labels, 9 classes), trained with nnU-Net's recipe as U-Mamba uses it (bowang-lab/U-Mamba
# on stock nnU-Net 2.1.1): SGD lr 1e-2, Nesterov momentum 0.99, wd 3e-5, poly (power 0.9) over 1000 epochs x 250
# iterations, gradient norm clipped at 12, mixed precision, Dice + cross-entropy with deep supervision.
#
# The network is the whole U-Mamba: `UMambaBackbone` runs encoder and decoder and returns the decoder's maps (highest
# resolution first); the 1 x 1 `FCNHead(num_convs=0)`s are its segmentation convs, the decode head on the
# full-resolution map and deep supervision on the next four, weighted 1/2^i and normalised as nnU-Net does (its lowest
# output has weight 0 and is left out). The plan is nnU-Net's 2D plan for 256 x 256 patches (`umamba_bot_2d`); give
# your dataset's with plan=dict(...) (`vssm.models.umamba.UMambaPlan.from_nnunet_plans` reads a plans.json).
# Slices are single-channel; nnU-Net z-scores them, here fixed mean/std map 8-bit slices to [-1, 1]. The batch size is
# what nnU-Net typically plans for 256 x 256 2D patches.
_base_ = ['mmseg::_base_/datasets/synapse.py', 'mmseg::_base_/default_runtime.py']

custom_imports = dict(imports=['vssm.mm'], allow_failed_imports=False)

num_classes = 9
crop_size = (256, 256)
decoder_channels = [32, 64, 128, 256, 512]  # the plan's features_per_stage[:5]: the decoder's maps 0-4


def _losses(weight):
    # nnU-Net's soft Dice leaves the background out: mmseg's DiceLoss drops the class channel `ignore_index`.
    return [
        dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=weight),
        dict(type='DiceLoss', use_sigmoid=False, naive_dice=True, ignore_index=0, loss_weight=weight),
    ]


def _head(index, weight):
    return dict(
        type='FCNHead',
        in_channels=decoder_channels[index],
        channels=decoder_channels[index],
        in_index=index,
        num_convs=0,
        concat_input=False,
        dropout_ratio=0.0,
        num_classes=num_classes,
        align_corners=False,
        loss_decode=_losses(weight))


model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        mean=[127.5],
        std=[127.5],
        bgr_to_rgb=False,
        pad_val=0,
        seg_pad_val=255,
        size=crop_size),
    backbone=dict(type='UMambaBackbone', model='umamba_bot_2d', in_chans=1),
    decode_head=_head(0, 16 / 31),
    auxiliary_head=[_head(i, 2**(4 - i) / 31) for i in range(1, 5)],
    train_cfg=dict(),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(128, 128)))

train_pipeline = [
    dict(type='LoadImageFromFile', color_type='grayscale'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=crop_size, ratio_range=(0.7, 1.4), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomRotate', prob=0.2, degree=180, pad_val=0, seg_pad_val=255),
    dict(type='RandomFlip', prob=[0.25, 0.25], direction=['horizontal', 'vertical']),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', color_type='grayscale'),
    dict(type='Resize', scale=crop_size, keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(batch_size=12, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(
    type='AmpOptimWrapper',
    optimizer=dict(type='SGD', lr=1e-2, momentum=0.99, nesterov=True, weight_decay=3e-5),
    clip_grad=dict(max_norm=12))
max_iters = 250000
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=25000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=25000),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
