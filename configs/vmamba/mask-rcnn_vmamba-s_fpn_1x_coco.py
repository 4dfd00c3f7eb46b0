# VMamba-S[s2l15]. Reported: 48.7 box AP, 43.7 mask AP, 70M params.
_base_ = ['./mask-rcnn_vmamba-t_fpn_1x_coco.py', './_base_/vmamba.py']

model = dict(backbone=_base_.vmamba.backbone.small)
del _base_.vmamba  # ./_base_/vmamba.py's helper, not a config key
