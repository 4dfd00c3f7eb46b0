# MSVMamba-Tiny: upernet_ms_vssm_4xb4-160k_ade20k-512x512_tiny.py (drop path 0.2). Reported: 47.8 mIoU, 65M params,
# 942 GFLOPs.
_base_ = ['./upernet_msvmamba-m_4xb4-160k_ade20k-512x512.py', './_base_/msvmamba.py']

model = dict(
    backbone=dict(_base_.msvmamba.backbone.tiny, drop_path_rate=0.2),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
del _base_.msvmamba  # ./_base_/msvmamba.py's helper, not a config key
