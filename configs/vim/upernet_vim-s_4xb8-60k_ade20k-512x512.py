# Vim-S + UperNet on ADE20K 512 x 512: hustvl/Vim seg/configs/vim/upernet/upernet_vim_small_24_512_slide_60k.py,
# which also switches on RoPE (not implemented here: the released middle-class-token checkpoints have none) and keeps
# the residual stream in float32. Reported (paper, earlier backbone): 44.9 mIoU.
_base_ = './upernet_vim-t_4xb8-60k_ade20k-512x512.py'

model = dict(
    backbone=dict(
        model='vim_small',
        residual_in_fp32=True,
        init_cfg=dict(checkpoint='https://huggingface.co/hustvl/Vim-small-midclstok/resolve/main/vim_s_midclstok_80p5acc.pth')),
    decode_head=dict(in_channels=[384, 384, 384, 384], channels=384),
    auxiliary_head=dict(in_channels=384))
