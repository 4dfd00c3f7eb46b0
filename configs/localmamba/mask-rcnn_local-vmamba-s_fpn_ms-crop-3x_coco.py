# LocalVMamba-S + Mask R-CNN FPN, 3x multi-scale: hunto/LocalMamba detection/configs/local_mamba/
# mask_rcnn_local_vssm_small_fpn_coco_ms_3x.py (the tiny recipe with LocalVMamba-S's searched directions, depths
# 2-2-27-2, drop path 0.2, its released ImageNet checkpoint).
_base_ = ['./mask-rcnn_local-vmamba-t_fpn_ms-crop-3x_coco.py', './_base_/localmamba.py']

model = dict(backbone=_base_.localmamba.backbone.vmamba_small)
del _base_.localmamba  # ./_base_/localmamba.py's helper, not a config key
