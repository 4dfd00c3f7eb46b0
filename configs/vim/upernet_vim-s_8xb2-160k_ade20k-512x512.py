# Vim-S + UperNet with Vim's optimizer on mmseg's standard 160k ADE20K schedule (8 GPUs x 2 images): Vim-Ti's 160k
# config with Vim-S's backbone and head widths, as the 60k Vim-S config.
_base_ = ['./upernet_vim-t_8xb2-160k_ade20k-512x512.py', './_base_/vim.py']

model = _base_.vim.seg_small
del _base_.vim  # ./_base_/vim.py's helper, not a config key
