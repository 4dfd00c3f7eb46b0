# VMamba-S[s2l15], 3x multi-scale. Reported: 49.9 box AP, 44.2 mask AP.
_base_ = ['./mask-rcnn_vmamba-t_fpn_ms-crop-3x_coco.py', './_base_/vmamba.py']

model = dict(backbone=_base_.vmamba.backbone.small)
del _base_.vmamba  # ./_base_/vmamba.py's helper, not a config key
