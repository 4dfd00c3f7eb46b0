# LocalVMamba-T + Mask R-CNN FPN, 1x schedule, COCO: hunto/LocalMamba detection/configs/local_mamba/
# mask_rcnn_local_vssm_tiny_fpn_coco.py, which is mmdet's Swin-T Mask R-CNN 1x (AdamW lr 1e-4, wd 0.05, no weight
# decay on norms; 12 epochs, steps at 8 and 11; 8 GPUs x 2 images) with LocalVMamba's backbone, the searched
# directions of LocalVMamba-T and mixed precision. Drop path 0.2: the original's backbone dict merges into Swin-T's
# (no _delete_), so Swin-T's drop_path_rate=0.2 reaches it. The stage maps before each downsample go through
# `outnorm{i}`. Non-square inputs scan the `v` directions with the original's reverse.
# The original points at local_vssm_tiny.ckpt, which is not released (README: "retraining...", LocalMamba#40, #42):
# set model.backbone.init_cfg.checkpoint to a LocalVMamba-T checkpoint of your own. No results are published.
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py', './_base_/localmamba.py']

custom_imports = dict(imports=['vssm.mm'], allow_failed_imports=False)

model = dict(backbone=_base_.localmamba.backbone.vmamba_tiny, neck=dict(in_channels=[96, 192, 384, 768]))

optim_wrapper = dict(type='AmpOptimWrapper')
del _base_.localmamba  # ./_base_/localmamba.py's helper, not a config key
