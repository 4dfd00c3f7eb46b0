# MSVMamba-Micro + Mask R-CNN FPN, 3x schedule with multi-scale training and DETR-style crops (Swin-T's recipe: 36
# epochs, steps at 27 and 33, AdamW lr 1e-4, wd 0.05): YuHengsss/MSVMamba detection/configs/ms_vssm/
# mask_rcnn_ms_vssm_fpn_coco_micro_3x.py. Reported: 46.3 box AP, 41.8 mask AP.
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py', './_base_/msvmamba.py']

custom_imports = dict(imports=['vssm.mm'], allow_failed_imports=False)

model = dict(backbone=_base_.msvmamba.backbone.micro, neck=dict(in_channels=[64, 128, 256, 512]))
del _base_.msvmamba  # ./_base_/msvmamba.py's helper, not a config key
