# LocalVMamba-T + Mask R-CNN FPN, 3x schedule with multi-scale training and DETR-style crops, COCO:
# hunto/LocalMamba detection/configs/local_mamba/mask_rcnn_local_vssm_tiny_fpn_coco_ms_3x.py, which is mmdet's Swin-T
# Mask R-CNN 3x recipe (36 epochs, steps at 27 and 33, 1000 linear warm-up iterations, AdamW lr 1e-4, wd 0.05, no
# weight decay on norms; 8 GPUs x 2 images) with LocalVMamba's backbone, the searched directions of LocalVMamba-T and
# mixed precision. The drop path is the 0.2 the original's backbone receives from the Swin-T base it merges into.
# The original points at local_vssm_tiny.ckpt, which is not released (LocalMamba#40, #42): set
# model.backbone.init_cfg.checkpoint to a LocalVMamba-T checkpoint of your own. No results are published.
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py', './_base_/localmamba.py']

custom_imports = dict(imports=['vssm.mm'], allow_failed_imports=False)

model = dict(backbone=_base_.localmamba.backbone.vmamba_tiny, neck=dict(in_channels=[96, 192, 384, 768]))

optim_wrapper = dict(type='AmpOptimWrapper')
del _base_.localmamba  # ./_base_/localmamba.py's helper, not a config key
