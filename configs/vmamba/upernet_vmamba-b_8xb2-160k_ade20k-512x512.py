# VMamba-B[s2l15] + UperNet 160k, ADE20K 512. Reported: 51.0 mIoU (51.6 multi-scale), 122M params.
_base_ = './upernet_vmamba-t_8xb2-160k_ade20k-512x512.py'

model = dict(
    backbone=dict(
        model='vmamba_base',
        drop_path_rate=0.6,
        init_cfg=dict(checkpoint='https://github.com/MzeroMiko/VMamba/releases/download/%23v2cls/vssm_base_0229_ckpt_epoch_237.pth')),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
