# VMamba-T[s2l5] + UperNet 160k, ADE20K 512. Reported: 48.3 mIoU (48.6 multi-scale), 62M params.
_base_ = ['./upernet_vmamba-t_8xb2-160k_ade20k-512x512.py', './_base_/vmamba.py']

model = dict(backbone=_base_.vmamba.backbone.tiny_s2l5)
del _base_.vmamba  # ./_base_/vmamba.py's helper, not a config key
