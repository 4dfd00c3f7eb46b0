# VMamba-T[s1l8] + UperNet, 160k iterations on ADE20K at 512 x 512: MzeroMiko/VMamba segmentation/configs/vssm1/
# upernet_vssm_4xb4-160k_ade20k-512x512_tiny.py, which is Swin-T's UperNet 160k (AdamW lr 6e-5, wd 0.01, no weight
# decay on norms, 1500 linear warm-up iterations then poly; 16 images per iteration: the original ran 4 GPUs x 4).
# Reported: 47.9 mIoU (48.8 multi-scale), 62M params, 949 GFLOPs.
_base_ = ['mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py', './_base_/vmamba.py']

custom_imports = dict(imports=['vssm.mm'], allow_failed_imports=False)

model = dict(
    backbone=_base_.vmamba.backbone.tiny,
    decode_head=dict(in_channels=[96, 192, 384, 768], num_classes=150),
    auxiliary_head=dict(in_channels=384, num_classes=150))
del _base_.vmamba  # ./_base_/vmamba.py's helper, not a config key
