# PlainMamba-L1 + UperNet, 160k iterations on ADE20K at 512 x 512: ChenhongyiYang/PlainMamba
# downstream/mmsegmentation/plain_mamba_seg_configs/l1_upernet.py (mmseg 0.x), which is mmseg's ViT UperNet 160k
# recipe (AdamW lr 6e-5, wd 0.01, no weight decay on position embedding and norms, 1500 linear warm-up iterations then
# poly; 8 GPUs x 2 images) without a neck: the outputs of layers 5, 11, 17, 23 go into UperNet at stride 16, the first
# three through LayerNorms `norm_layer{i}`, the last through the network's final norm. As the original, A_log, D and the
# direction tokens get no weight decay, and the position embedding stays at 14 x 14, resampled to each input's grid.
# Deviation: the original converts the backbone's BatchNorms (stem, dwconv block) to SyncBN; ours keep BatchNorm.
# Published: 35M parameters, 44.1 mIoU (the original README).
_base_ = ['mmseg::vit/vit_vit-b16_mln_upernet_8xb2-160k_ade20k-512x512.py', './_base_/plainmamba.py']

custom_imports = dict(imports=['vssm.mm'], allow_failed_imports=False)

model = dict(
    pretrained=None,
    backbone=_base_.plainmamba.backbone.l1,
    neck=None,
    decode_head=dict(in_channels=[192, 192, 192, 192]),
    auxiliary_head=dict(in_channels=192))

optim_wrapper = dict(paramwise_cfg=dict(custom_keys={
    '.A_log': dict(decay_mult=0.0), '.D': dict(decay_mult=0.0), '.direction_Bs': dict(decay_mult=0.0)}))
train_dataloader = dict(batch_size=2)
del _base_.plainmamba  # ./_base_/plainmamba.py's helper, not a config key
