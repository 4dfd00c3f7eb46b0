# LocalVMamba-S + Mask R-CNN FPN, 3x multi-scale: hunto/LocalMamba detection/configs/local_mamba/
# mask_rcnn_local_vssm_small_fpn_coco_ms_3x.py (the tiny recipe with LocalVMamba-S's searched directions, depths
# 2-2-27-2, drop path 0.2, its released ImageNet checkpoint).
_base_ = './mask-rcnn_local-vmamba-t_fpn_ms-crop-3x_coco.py'

model = dict(
    backbone=dict(
        model='local_vssm_small',
        init_cfg=dict(checkpoint='https://github.com/hunto/LocalMamba/releases/download/v1.0.0/local_vssm_small.ckpt')))
