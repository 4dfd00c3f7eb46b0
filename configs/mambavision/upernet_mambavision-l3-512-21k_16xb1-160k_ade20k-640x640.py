# MambaVision-L3 (ImageNet-21K, 512 px checkpoint) + UperNet 160k on ADE20K at 640 x 640: NVlabs/MambaVision
# semantic_segmentation/configs/mamba_vision/mamba_vision_160k_ade20k-640x640_l3_21k.py. Windows (64, 32), drop path
# 0.8, AdamW lr 8e-5, wd 0.05, full precision (the original: mixed precision "can cause instability" here),
# evaluated every 5k iterations, 16 GPUs x 1 image; mmseg's ADE20K 640 x 640 pipelines.
# Reported: 53.2 mIoU, 780M params, 3670 GFLOPs.
_base_ = ['./upernet_mambavision-t_16xb1-160k_ade20k-512x512.py', './_base_/mambavision.py']

crop_size = (640, 640)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(_base_.mambavision.backbone.large3_512_21k, window_size=(8, 8, 64, 32), drop_path_rate=0.8),
    decode_head=dict(in_channels=[256, 512, 1024, 2048]),
    auxiliary_head=dict(in_channels=1024))
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(lr=8e-5, weight_decay=0.05))
train_cfg = dict(val_interval=5000)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(2560, 640), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2560, 640), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
del _base_.mambavision  # ./_base_/mambavision.py's helper, not a config key
