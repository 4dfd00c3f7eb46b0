# Vim-S + UperNet on ADE20K 512 x 512: hustvl/Vim seg/configs/vim/upernet/upernet_vim_small_24_512_slide_60k.py,
# which also switches on RoPE (not implemented here: the released middle-class-token checkpoints have none) and keeps
# the residual stream in float32. Reported (paper, earlier backbone): 44.9 mIoU.
_base_ = ['./upernet_vim-t_4xb8-60k_ade20k-512x512.py', './_base_/vim.py']

model = _base_.vim.seg_small
del _base_.vim  # ./_base_/vim.py's helper, not a config key
