# Vim-Ti + Mask R-CNN FPN, 3x schedule with multi-scale training and DETR-style crops (mmdet's Swin-T recipe: 36
# epochs, steps at 27 and 33) and Vim's ViTDet optimizer (AdamW lr 1e-4, wd 0.1, layer decay 0.7, mixed precision).
_base_ = 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py'

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
