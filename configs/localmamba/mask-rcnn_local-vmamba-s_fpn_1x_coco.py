# LocalVMamba-S + Mask R-CNN FPN 1x: hunto/LocalMamba detection/configs/local_mamba/
# mask_rcnn_local_vssm_small_fpn_coco.py (the tiny recipe with LocalVMamba-S's searched directions, depths
# 2-2-27-2, its released ImageNet checkpoint).
_base_ = ['./mask-rcnn_local-vmamba-t_fpn_1x_coco.py', './_base_/localmamba.py']

model = dict(backbone=_base_.localmamba.backbone.vmamba_small)
del _base_.localmamba  # ./_base_/localmamba.py's helper, not a config key
