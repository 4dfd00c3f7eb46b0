# VMamba-T[s2l5] + UperNet 160k, ADE20K 512. Reported: 48.3 mIoU (48.6 multi-scale), 62M params.
_base_ = './upernet_vmamba-t_8xb2-160k_ade20k-512x512.py'

model = dict(
    backbone=dict(
        model='vmamba_tiny_s2l5',
        init_cfg=dict(checkpoint='https://github.com/MzeroMiko/VMamba/releases/download/%23v2cls/vssm_tiny_0230_ckpt_epoch_262.pth')))
