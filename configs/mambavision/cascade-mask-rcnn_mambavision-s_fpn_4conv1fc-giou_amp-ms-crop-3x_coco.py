# MambaVision-S + Cascade Mask R-CNN 3x. Reported: 52.3 box AP, 45.2 mask AP, 108M params.
_base_ = ['./cascade-mask-rcnn_mambavision-t_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py', './_base_/mambavision.py']

model = dict(
    backbone=dict(_base_.mambavision.backbone.small, drop_path_rate=0.3),
    neck=dict(in_channels=[96, 192, 384, 768]))
del _base_.mambavision  # ./_base_/mambavision.py's helper, not a config key
