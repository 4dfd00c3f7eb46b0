# VMamba-S[s2l15] + UperNet 160k, ADE20K 512. Reported: 50.6 mIoU (51.2 multi-scale), 82M params.
_base_ = './upernet_vmamba-t_8xb2-160k_ade20k-512x512.py'

model = dict(
    backbone=dict(
        model='vmamba_small',
        drop_path_rate=0.3,
        init_cfg=dict(checkpoint='https://github.com/MzeroMiko/VMamba/releases/download/%23v2cls/vssm_small_0229_ckpt_epoch_222.pth')))
