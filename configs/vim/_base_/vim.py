# Vim in the configs of this folder. `backbone.tiny` replaces the base segmentor's backbone (the configs add the input
# size they train at), `backbone.small` is what the Vim-S detection configs change in it, `seg_small` what the Vim-S
# segmentation configs change in Vim-Ti's model (hustvl/Vim seg/configs/vim/upernet/
# upernet_vim_small_24_512_slide_60k.py: float32 residual stream, 384-channel heads).
# `det` is what the Vim-Ti detection configs change in mmdet's Mask R-CNN: the backbone at ViTDet's 1024-px input with
# drop path 0.1 and Vim's ViTDet optimizer (hustvl/Vim det/projects/ViTDet/configs/COCO/mask_rcnn_vimdet_b_100ep.py):
# AdamW lr 1e-4, wd 0.1, layer decay 0.7 over the 24 blocks (no weight decay on norms, biases, position embedding),
# mixed precision.
# A config reads `_base_.vim.<entry>` and its last line deletes `_base_.vim`: it is a helper shared by the configs, not
# a key of any merged config (nor are `_tiny` and `_small`, deleted below).
_tiny = dict(
    _delete_=True, type='VimBackbone', model='vim_tiny', out_indices=(5, 11, 17, 23),
    init_cfg=dict(type='Pretrained', checkpoint='https://huggingface.co/hustvl/Vim-tiny-midclstok/resolve/main/vim_t_midclstok_76p1acc.pth'))
_small = dict(model='vim_small', init_cfg=dict(checkpoint='https://huggingface.co/hustvl/Vim-small-midclstok/resolve/main/vim_s_midclstok_80p5acc.pth'))
vim = dict(
    backbone=dict(tiny=_tiny, small=_small),
    seg_small=dict(
        backbone=dict(_small, residual_in_fp32=True),
        decode_head=dict(in_channels=[384, 384, 384, 384], channels=384),
        auxiliary_head=dict(in_channels=384)),
    det=dict(
        model=dict(
            backbone=dict(_tiny, img_size=1024, drop_path_rate=0.1),
            neck=dict(in_channels=[192, 192, 192, 192])),
        optim_wrapper=dict(
            _delete_=True,
            type='AmpOptimWrapper',
            optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1),
            constructor='VSSMLayerDecayOptimizerConstructor',
            paramwise_cfg=dict(layer_decay_rate=0.7, num_layers=24))))
del _tiny, _small
