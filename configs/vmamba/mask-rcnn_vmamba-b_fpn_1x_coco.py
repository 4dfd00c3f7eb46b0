# VMamba-B[s2l15]. Reported: 49.2 box AP, 44.1 mask AP, 108M params.
_base_ = ['./mask-rcnn_vmamba-t_fpn_1x_coco.py', './_base_/vmamba.py']

model = dict(
    backbone=_base_.vmamba.backbone.base,
    neck=dict(in_channels=[128, 256, 512, 1024]))
del _base_.vmamba  # ./_base_/vmamba.py's helper, not a config key
