# Vim-Ti + Mask R-CNN FPN 1x on COCO. Vim publishes no Mask R-CNN FPN recipe (its detection code is detectron2's
# ViTDet Cascade Mask R-CNN, 100 epochs of large-scale jitter); this is mmdet's Swin-T Mask R-CNN 1x (detector, data,
# 12 epochs) with Vim's ViTDet optimizer (hustvl/Vim det/projects/ViTDet/configs/COCO/mask_rcnn_vimdet_b_100ep.py):
# AdamW lr 1e-4, wd 0.1, layer decay 0.7 over the 24 blocks (no weight decay on norms, biases, position embedding),
# drop path 0.1, mixed precision. The backbone is the segmentation one (blocks 5/11/17/23 -> strides 4-32) at
# img_size 1024 like Vim's ViTDet backbone; its position embedding is resampled to each padded input's grid.
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py', './_base_/vim.py']

custom_imports = dict(imports=['vssm.mm'], allow_failed_imports=False)

model = _base_.vim.det.model
optim_wrapper = _base_.vim.det.optim_wrapper
del _base_.vim  # ./_base_/vim.py's helper, not a config key
