# MambaVision-S + Cascade Mask R-CNN 3x. Reported: 52.3 box AP, 45.2 mask AP, 108M params.
_base_ = './cascade-mask-rcnn_mambavision-t_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py'

model = dict(
    backbone=dict(
        model='mambavision_small',
        drop_path_rate=0.3,
        init_cfg=dict(checkpoint='https://huggingface.co/nvidia/MambaVision-S-1K/resolve/main/mambavision_small_1k.pth.tar')),
    neck=dict(in_channels=[96, 192, 384, 768]))
