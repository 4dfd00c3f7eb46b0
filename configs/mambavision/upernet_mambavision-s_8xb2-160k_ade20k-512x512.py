# MambaVision-S + UperNet 160k, ADE20K 512: windows (160, 56), drop path 0.7, AdamW lr 6e-5, 8 GPUs x 2 images.
# Reported: 48.2 mIoU, 84M params.
_base_ = ['./upernet_mambavision-t_16xb1-160k_ade20k-512x512.py', './_base_/mambavision.py']

model = dict(
    backbone=dict(_base_.mambavision.backbone.small, window_size=(8, 8, 160, 56), drop_path_rate=0.7),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
optim_wrapper = dict(optimizer=dict(lr=6e-5))
train_dataloader = dict(batch_size=2)
del _base_.mambavision  # ./_base_/mambavision.py's helper, not a config key
