# VMamba-T[s1l8] + Mask R-CNN FPN, 3x schedule with multi-scale training and DETR-style crops (Swin-T's recipe:
# 36 epochs, steps at 27 and 33, AdamW lr 1e-4, wd 0.05): MzeroMiko/VMamba detection/configs/vssm1/
# mask_rcnn_vssm_fpn_coco_tiny_ms_3x.py. Reported: 48.8 box AP, 43.7 mask AP.
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py', './_base_/vmamba.py']

custom_imports = dict(imports=['vssm.mm'], allow_failed_imports=False)

model = dict(backbone=_base_.vmamba.backbone.tiny, neck=dict(in_channels=[96, 192, 384, 768]))
del _base_.vmamba  # ./_base_/vmamba.py's helper, not a config key
