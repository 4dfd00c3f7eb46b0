# MSVMamba-Tiny: mask_rcnn_ms_vssm_fpn_coco_tiny.py. Reported: 46.9 box AP, 42.2 mask AP, 53M params, 252 GFLOPs.
_base_ = ['./mask-rcnn_msvmamba-m_fpn_1x_coco.py', './_base_/msvmamba.py']

model = dict(backbone=_base_.msvmamba.backbone.tiny, neck=dict(in_channels=[96, 192, 384, 768]))
del _base_.msvmamba  # ./_base_/msvmamba.py's helper, not a config key
