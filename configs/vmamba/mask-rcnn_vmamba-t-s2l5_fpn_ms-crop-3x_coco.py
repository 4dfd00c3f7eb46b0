# VMamba-T[s2l5], 3x multi-scale. Reported: 48.9 box AP, 43.7 mask AP.
_base_ = ['./mask-rcnn_vmamba-t_fpn_ms-crop-3x_coco.py', './_base_/vmamba.py']

model = dict(backbone=_base_.vmamba.backbone.tiny_s2l5)
del _base_.vmamba  # ./_base_/vmamba.py's helper, not a config key
