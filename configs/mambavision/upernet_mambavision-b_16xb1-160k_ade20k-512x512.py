# MambaVision-B (layer scale 1e-5) + UperNet 160k, ADE20K 512: drop path 0.4, 16 GPUs x 1 image.
# Reported: 49.1 mIoU, 126M params.
_base_ = ['./upernet_mambavision-t_16xb1-160k_ade20k-512x512.py', './_base_/mambavision.py']

model = dict(
    backbone=dict(_base_.mambavision.backbone.base, drop_path_rate=0.4),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
del _base_.mambavision  # ./_base_/mambavision.py's helper, not a config key
