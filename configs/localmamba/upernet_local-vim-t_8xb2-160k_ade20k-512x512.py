# LocalVim-T + UperNet, 160k iterations on ADE20K at 512 x 512: hunto/LocalMamba segmentation/configs/local_mamba/
# upernet_local_vim-tiny_8xb2-160k_ade20k-512x512.py, which is mmseg's ViT-B UperNet 160k recipe (AdamW lr 6e-5,
# wd 0.01, no weight decay on position embedding and norms, 1500 linear warm-up iterations then poly; 8 GPUs x 2
# images) with its multi-level neck removed: the mixer outputs of blocks 4, 9, 14, 19 go through `outnorm_{i}` into
# UperNet at stride 16. The backbone is built for 512 x 512 (the 224-px checkpoint's position embedding and RoPE
# tables resized bicubically to 32 x 32), drop path 0.1. Deviation: the original config builds the blocks with
# LayerNorm (rms_norm=False) although the checkpoint was trained with RMSNorm (its LN biases then stay at zero);
# this one keeps the checkpoint's RMSNorm. No results are published.
_base_ = ['mmseg::vit/vit_vit-b16_mln_upernet_8xb2-160k_ade20k-512x512.py', './_base_/localmamba.py']

custom_imports = dict(imports=['vssm.mm'], allow_failed_imports=False)

model = dict(
    pretrained=None,
    backbone=dict(_base_.localmamba.backbone.vim_tiny, img_size=512, out_indices=(4, 9, 14, 19)),
    neck=None,
    decode_head=dict(in_channels=[192, 192, 192, 192]),
    auxiliary_head=dict(in_channels=192))

train_dataloader = dict(batch_size=2)
del _base_.localmamba  # ./_base_/localmamba.py's helper, not a config key
