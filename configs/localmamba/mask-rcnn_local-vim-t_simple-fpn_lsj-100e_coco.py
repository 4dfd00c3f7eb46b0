# LocalVim-T + ViTDet's Mask R-CNN, large-scale jitter at 1024 x 1024, COCO: hunto/LocalMamba detection/configs/
# local_mamba/vitdet_cascade_mask-rcnn_local_vim_tiny_lsj-100e.py and its base lsj-100e_coco-instance.py (mmdet's
# projects/ViTDet recipe). Despite "cascade" in its name the original builds Mask R-CNN (mmdet's mask-rcnn_r50_fpn
# base, one RoI stage): SimpleFPN neck, 2-conv RPN head, 4conv1fc box head, LN2d in the neck and heads.
# * Backbone: LocalVim-T built for 1024 px (the 224-px checkpoint's position embedding and RoPE tables resized
#   bicubically to 64 x 64 at load), drop path 0.1; the mixer output of its last block (19) through `outnorm_19`
#   feeds SimpleFPN (strides 4-64).
# * Data: flip, random resize to 0.1-2.0 x 1024, 1024 crop, padding to 1024 (value 114); 2 images per GPU.
# * Schedule: 184375 iterations, steps at 163889 and 177546, 250 warm-up iterations, validation every 5000. These
#   are ViTDet's 100 epochs at 64 images per iteration (auto_scale_lr's base); on 8 GPUs x 2 images, 25 epochs.
# * Optimizer: AdamW lr 1e-4, wd 0.05, gradient clipping at 35, float32 (the original's OptimWrapper replaces the
#   base's AmpOptimWrapper). The original names mmdet's ViTDet layer-decay constructor (rate 0.7, 12 layers), whose
#   rule finds blocks by `backbone.blocks.N`; LocalVim's are `backbone.layers.N`, so it gives every block, neck and
#   head the full lr, patch_embed and pos_embed 0.7^13 of it, and weight decay to all but pos_embed. That is what
#   runs here (custom_keys). ViTDet's rule proper for LocalVim would be constructor=
#   'VSSMLayerDecayOptimizerConstructor', paramwise_cfg=dict(layer_decay_rate=0.7).
# Not set: the original's Fp16CompresssionHook (DDP gradients all-reduced in float16, from projects/ViTDet) and its
# TensorBoard logging. Deviation: the original builds the blocks with LayerNorm (rms_norm=False) although the
# checkpoint was trained with RMSNorm (the LN biases then start at zero); this one keeps the checkpoint's RMSNorm,
# as the LocalVim UperNet configs. No results are published.
_base_ = ['mmdet::_base_/models/mask-rcnn_r50_fpn.py', 'mmdet::_base_/default_runtime.py', './_base_/localmamba.py']

custom_imports = dict(imports=['vssm.mm'], allow_failed_imports=False)

norm_cfg = dict(type='LN2d', requires_grad=True)
image_size = (1024, 1024)

model = dict(
    data_preprocessor=dict(batch_augments=[dict(type='BatchFixedSizePad', size=image_size, pad_mask=True)]),
    backbone=dict(_base_.localmamba.backbone.vim_tiny, img_size=image_size, out_indices=(19,)),
    neck=dict(
        _delete_=True,
        type='SimpleFPN',
        backbone_channel=192,
        in_channels=[48, 96, 192, 192],
        out_channels=256,
        num_outs=5,
        norm_cfg=norm_cfg),
    rpn_head=dict(num_convs=2),
    roi_head=dict(
        bbox_head=dict(type='Shared4Conv1FCBBoxHead', conv_out_channels=256, norm_cfg=norm_cfg),
        mask_head=dict(norm_cfg=norm_cfg)))

# dataset
dataset_type = 'CocoDataset'
data_root = 'data/coco/'
backend_args = None

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.1, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_type='absolute_range', crop_size=image_size, recompute_bbox=True,
         allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='Pad', size=image_size, pad_val=dict(img=(114, 114, 114))),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='Pad', size=image_size, pad_val=dict(img=(114, 114, 114))),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]

train_dataloader = dict(
    batch_size=2,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/instances_val2017.json',
        data_prefix=dict(img='val2017/'),
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + 'annotations/instances_val2017.json',
    metric=['bbox', 'segm'],
    format_only=False)
test_evaluator = val_evaluator

# optimizer: the original's effective parameter groups (see above)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    clip_grad=dict(max_norm=35, norm_type=2),
    paramwise_cfg=dict(custom_keys={
        'backbone.patch_embed': dict(lr_mult=0.7**13),
        'backbone.pos_embed': dict(lr_mult=0.7**13, decay_mult=0.0)}))

# schedule
max_iters = 184375
interval = 5000
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=250),
    dict(type='MultiStepLR', begin=0, end=max_iters, by_epoch=False, milestones=[163889, 177546], gamma=0.1),
]
train_cfg = dict(
    type='IterBasedTrainLoop',
    max_iters=max_iters,
    val_interval=interval,
    dynamic_intervals=[(max_iters // interval * interval + 1, max_iters)])
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, save_last=True, interval=interval, max_keep_ckpts=5))
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)

auto_scale_lr = dict(base_batch_size=64)
del _base_.localmamba  # ./_base_/localmamba.py's helper, not a config key
