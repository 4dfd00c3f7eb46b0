# VMamba-S[s2l15], 3x multi-scale. Reported: 49.9 box AP, 44.2 mask AP.
_base_ = './mask-rcnn_vmamba-t_fpn_ms-crop-3x_coco.py'

model = dict(
    backbone=dict(
        model='vmamba_small',
        drop_path_rate=0.3,
        init_cfg=dict(checkpoint='https://github.com/MzeroMiko/VMamba/releases/download/%23v2cls/vssm_small_0229_ckpt_epoch_222.pth')))
