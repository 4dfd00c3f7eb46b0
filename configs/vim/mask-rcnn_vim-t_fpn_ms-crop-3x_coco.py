# Vim-Ti + Mask R-CNN FPN, 3x schedule with multi-scale training and DETR-style crops (mmdet's Swin-T recipe: 36
# epochs, steps at 27 and 33) and Vim's ViTDet optimizer (AdamW lr 1e-4, wd 0.1, layer decay 0.7, mixed precision).
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py', './_base_/vim.py']

custom_imports = dict(imports=['vssm.mm'], allow_failed_imports=False)

model = _base_.vim.det.model
optim_wrapper = _base_.vim.det.optim_wrapper
del _base_.vim  # ./_base_/vim.py's helper, not a config key
