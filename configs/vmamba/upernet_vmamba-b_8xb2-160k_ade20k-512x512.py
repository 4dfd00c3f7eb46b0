# VMamba-B[s2l15] + UperNet 160k, ADE20K 512. Reported: 51.0 mIoU (51.6 multi-scale), 122M params.
_base_ = ['./upernet_vmamba-t_8xb2-160k_ade20k-512x512.py', './_base_/vmamba.py']

model = dict(
    backbone=_base_.vmamba.backbone.base,
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
del _base_.vmamba  # ./_base_/vmamba.py's helper, not a config key
