# VMamba-S[s2l15]. Reported: 48.7 box AP, 43.7 mask AP, 70M params.
_base_ = './mask-rcnn_vmamba-t_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        model='vmamba_small',
        drop_path_rate=0.3,
        init_cfg=dict(checkpoint='https://github.com/MzeroMiko/VMamba/releases/download/%23v2cls/vssm_small_0229_ckpt_epoch_222.pth')))
