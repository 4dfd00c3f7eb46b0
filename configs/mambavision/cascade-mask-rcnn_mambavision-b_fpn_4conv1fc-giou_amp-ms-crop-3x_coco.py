# MambaVision-B (layer scale 1e-5) + Cascade Mask R-CNN 3x. Reported: 52.8 box AP, 45.7 mask AP, 145M params.
_base_ = './cascade-mask-rcnn_mambavision-t_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py'

model = dict(
    backbone=dict(
        model='mambavision_base',
        drop_path_rate=0.5,
        init_cfg=dict(checkpoint='https://huggingface.co/nvidia/MambaVision-B-1K/resolve/main/mambavision_base_1k.pth.tar')),
    neck=dict(in_channels=[128, 256, 512, 1024]))
