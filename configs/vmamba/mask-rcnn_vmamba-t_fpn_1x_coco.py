# VMamba-T[s1l8] + Mask R-CNN FPN, 1x schedule, COCO: MzeroMiko/VMamba detection/configs/vssm1/
# mask_rcnn_vssm_fpn_coco_tiny.py, which is Swin-T's Mask R-CNN 1x (AdamW lr 1e-4, wd 0.05, no weight decay on
# norms; 12 epochs, steps at 8 and 11; 8 GPUs x 2 images) with VMamba's backbone. Reported: 47.3 box AP, 42.7 mask
# AP, 50M params, 271 GFLOPs.
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py', './_base_/vmamba.py']

custom_imports = dict(imports=['vssm.mm'], allow_failed_imports=False)

model = dict(backbone=_base_.vmamba.backbone.tiny, neck=dict(in_channels=[96, 192, 384, 768]))
del _base_.vmamba  # ./_base_/vmamba.py's helper, not a config key
