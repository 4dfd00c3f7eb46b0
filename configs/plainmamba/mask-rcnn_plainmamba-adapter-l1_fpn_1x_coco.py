# PlainMamba-Adapter-L1 + Mask R-CNN FPN, 1x schedule, COCO: ChenhongyiYang/PlainMamba downstream/mmdetection/
# plain_mamba_det_configs/maskrcnn/l1_maskrcnn_1x.py (mmdet 2.x) over its template/maskrcnn_1x.py: mmdet's Mask R-CNN
# with SyncBN in the FPN and a 4-conv-1-fc box head (Shared4Conv1FCBBoxHead, SyncBN), the backbone's four adapter levels
# (strides 4-32) into the FPN; 1333 x 800 resize and flip, images without objects kept; AdamW lr 1e-4, wd 0.05, no
# weight decay on the level and position embeddings, norms, biases, A_log, D and the direction tokens; 12 epochs,
# steps at 8 and 11, 500 linear warm-up iterations; 8 GPUs x 2 images (the original README's command).
# Deviation: the original converts the network's BatchNorms (stem, dwconv block) to SyncBN; ours keep BatchNorm.
# Published: 31M parameters, 44.1 box AP, 39.1 mask AP (the original README).
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', './_base_/plainmamba.py']

custom_imports = dict(imports=['vssm.mm'], allow_failed_imports=False)

norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    backbone=_base_.plainmamba.adapter.l1,
    neck=dict(in_channels=[192, 192, 192, 192], norm_cfg=norm_cfg),
    roi_head=dict(bbox_head=dict(type='Shared4Conv1FCBBoxHead', norm_cfg=norm_cfg)))

train_dataloader = dict(batch_size=2, dataset=dict(filter_cfg=dict(filter_empty_gt=False)))
optim_wrapper = _base_.plainmamba.det_optim_wrapper
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=3, save_last=True))
del _base_.plainmamba  # ./_base_/plainmamba.py's helper, not a config key
