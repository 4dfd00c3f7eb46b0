# PlainMamba-Adapter-L1 + RetinaNet FPN, 1x schedule, COCO: ChenhongyiYang/PlainMamba downstream/mmdetection/
# plain_mamba_det_configs/retinanet/l1_retinanet_1x.py (mmdet 2.x) over its template/retinanet_1x.py: mmdet's RetinaNet
# with SyncBN in the FPN and its extra levels from the FPN's output; 1333 x 800 resize and flip; AdamW lr 1e-4,
# wd 0.05, no weight decay on the level and position embeddings, norms, biases, A_log, D and the direction tokens,
# gradients clipped at norm 35; 12 epochs, steps at 8 and 11, 500 linear warm-up iterations; 8 GPUs x 2 images.
# The original's FPN starts at its level 1 (stride 8) and computes level 0 for nothing (`find_unused_parameters`);
# here the backbone returns levels 1-3 (out_indices) and does not build what only level 0 needs (spm.fc1, up,
# ad_norm1): the same network, FPN keys and outputs, and the original's checkpoints load.
# Deviation: the original converts the network's BatchNorms (stem, dwconv block) to SyncBN; ours keep BatchNorm.
# Published: 19M parameters, 41.7 box AP (the original README).
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', './_base_/plainmamba.py']

custom_imports = dict(imports=['vssm.mm'], allow_failed_imports=False)

model = dict(
    backbone=dict(_base_.plainmamba.adapter.l1, out_indices=(1, 2, 3)),
    neck=dict(in_channels=[192, 192, 192], start_level=0, add_extra_convs='on_output',
              norm_cfg=dict(type='SyncBN', requires_grad=True)))

train_dataloader = dict(batch_size=2)
optim_wrapper = dict(_base_.plainmamba.det_optim_wrapper, clip_grad=dict(max_norm=35, norm_type=2))
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=3, save_last=True))
del _base_.plainmamba  # ./_base_/plainmamba.py's helper, not a config key
