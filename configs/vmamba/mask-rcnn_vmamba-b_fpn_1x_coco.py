# VMamba-B[s2l15]. Reported: 49.2 box AP, 44.1 mask AP, 108M params.
_base_ = './mask-rcnn_vmamba-t_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        model='vmamba_base',
        drop_path_rate=0.6,
        init_cfg=dict(checkpoint='https://github.com/MzeroMiko/VMamba/releases/download/%23v2cls/vssm_base_0229_ckpt_epoch_237.pth')),
    neck=dict(in_channels=[128, 256, 512, 1024]))
