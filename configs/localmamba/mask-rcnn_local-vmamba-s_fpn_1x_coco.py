# LocalVMamba-S + Mask R-CNN FPN 1x: hunto/LocalMamba detection/configs/local_mamba/
# mask_rcnn_local_vssm_small_fpn_coco.py (the tiny recipe with LocalVMamba-S's searched directions, depths
# 2-2-27-2, its released ImageNet checkpoint).
_base_ = './mask-rcnn_local-vmamba-t_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        model='local_vssm_small',
        init_cfg=dict(checkpoint='https://github.com/hunto/LocalMamba/releases/download/v1.0.0/local_vssm_small.ckpt')))
