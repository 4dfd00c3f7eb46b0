# VMamba-T[s2l5] (the original's "tiny1": ssm_ratio 2, depths 2-2-5-2). Reported: 47.4 box AP, 42.7 mask AP, 50M.
_base_ = './mask-rcnn_vmamba-t_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        model='vmamba_tiny_s2l5',
        init_cfg=dict(checkpoint='https://github.com/MzeroMiko/VMamba/releases/download/%23v2cls/vssm_tiny_0230_ckpt_epoch_262.pth')))
