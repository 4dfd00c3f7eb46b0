# Vim-Ti + Mask R-CNN FPN 1x on COCO. Vim publishes no Mask R-CNN FPN recipe (its detection code is detectron2's
# ViTDet Cascade Mask R-CNN, 100 epochs of large-scale jitter); this is mmdet's Swin-T Mask R-CNN 1x (detector, data,
# 12 epochs) with Vim's ViTDet optimizer (hustvl/Vim det/projects/ViTDet/configs/COCO/mask_rcnn_vimdet_b_100ep.py):
# AdamW lr 1e-4, wd 0.1, layer decay 0.7 over the 24 blocks (no weight decay on norms, biases, position embedding),
# drop path 0.1, mixed precision. The backbone is the segmentation one (blocks 5/11/17/23 -> strides 4-32) at
# img_size 1024 like Vim's ViTDet backbone; its position embedding is resampled to each padded input's grid.
_base_ = 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'

custom_imports = dict(imports=['vssm.mm'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='VimBackbone',
        model='vim_tiny',
        img_size=1024,
        out_indices=(5, 11, 17, 23),
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint='https://huggingface.co/hustvl/Vim-tiny-midclstok/resolve/main/vim_t_midclstok_76p1acc.pth')),
    neck=dict(in_channels=[192, 192, 192, 192]))

optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1),
    constructor='VSSMLayerDecayOptimizerConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.7, num_layers=24))
