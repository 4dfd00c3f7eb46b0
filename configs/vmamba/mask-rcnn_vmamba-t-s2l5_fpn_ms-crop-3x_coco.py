# VMamba-T[s2l5], 3x multi-scale. Reported: 48.9 box AP, 43.7 mask AP.
_base_ = './mask-rcnn_vmamba-t_fpn_ms-crop-3x_coco.py'

model = dict(
    backbone=dict(
        model='vmamba_tiny_s2l5',
        init_cfg=dict(checkpoint='https://github.com/MzeroMiko/VMamba/releases/download/%23v2cls/vssm_tiny_0230_ckpt_epoch_262.pth')))
