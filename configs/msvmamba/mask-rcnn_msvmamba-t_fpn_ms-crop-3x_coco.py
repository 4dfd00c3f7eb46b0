# MSVMamba-Tiny: mask_rcnn_ms_vssm_fpn_coco_tiny_3x.py. Reported: 48.3 box AP, 43.2 mask AP.
_base_ = ['./mask-rcnn_msvmamba-m_fpn_ms-crop-3x_coco.py', './_base_/msvmamba.py']

model = dict(backbone=_base_.msvmamba.backbone.tiny, neck=dict(in_channels=[96, 192, 384, 768]))
del _base_.msvmamba  # ./_base_/msvmamba.py's helper, not a config key
