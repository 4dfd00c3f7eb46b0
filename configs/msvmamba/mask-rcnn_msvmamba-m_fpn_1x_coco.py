# MSVMamba-Micro + Mask R-CNN FPN, 1x schedule, COCO: YuHengsss/MSVMamba detection/configs/ms_vssm/
# mask_rcnn_ms_vssm_fpn_coco_micro.py, which is Swin-T's Mask R-CNN 1x (AdamW lr 1e-4, wd 0.05, no weight decay on
# norms; 12 epochs, steps at 8 and 11) with MSVMamba's backbone. Reported: 43.8 box AP, 39.9 mask AP, 32M params,
# 201 GFLOPs.
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py', './_base_/msvmamba.py']

custom_imports = dict(imports=['vssm.mm'], allow_failed_imports=False)

model = dict(backbone=_base_.msvmamba.backbone.micro, neck=dict(in_channels=[64, 128, 256, 512]))
del _base_.msvmamba  # ./_base_/msvmamba.py's helper, not a config key
