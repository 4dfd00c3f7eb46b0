# VMamba-S[s2l15] + UperNet 160k, ADE20K 512. Reported: 50.6 mIoU (51.2 multi-scale), 82M params.
_base_ = ['./upernet_vmamba-t_8xb2-160k_ade20k-512x512.py', './_base_/vmamba.py']

model = dict(backbone=_base_.vmamba.backbone.small)
del _base_.vmamba  # ./_base_/vmamba.py's helper, not a config key
