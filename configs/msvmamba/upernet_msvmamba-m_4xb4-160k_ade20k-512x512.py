# MSVMamba-Micro + UperNet, 160k iterations on ADE20K at 512 x 512: YuHengsss/MSVMamba segmentation/configs/ms_vssm/
# upernet_ms_vssm_4xb4-160k_ade20k-512x512_micro.py, which is Swin-T's UperNet 160k (AdamW lr 6e-5, wd 0.01, no
# weight decay on norms, 1500 linear warm-up iterations then poly) with MSVMamba's backbone. Reported: 45.1 mIoU
# (45.4 multi-scale), 42M params, 875 GFLOPs.
_base_ = ['mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py', './_base_/msvmamba.py']

custom_imports = dict(imports=['vssm.mm'], allow_failed_imports=False)

model = dict(
    backbone=_base_.msvmamba.backbone.micro,
    decode_head=dict(in_channels=[64, 128, 256, 512], num_classes=150),
    auxiliary_head=dict(in_channels=256, num_classes=150))
del _base_.msvmamba  # ./_base_/msvmamba.py's helper, not a config key
