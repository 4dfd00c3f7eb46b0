# MambaVision-B (layer scale 1e-5) + Cascade Mask R-CNN 3x. Reported: 52.8 box AP, 45.7 mask AP, 145M params.
_base_ = ['./cascade-mask-rcnn_mambavision-t_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py', './_base_/mambavision.py']

model = dict(
    backbone=dict(_base_.mambavision.backbone.base, drop_path_rate=0.5),
    neck=dict(in_channels=[128, 256, 512, 1024]))
del _base_.mambavision  # ./_base_/mambavision.py's helper, not a config key
