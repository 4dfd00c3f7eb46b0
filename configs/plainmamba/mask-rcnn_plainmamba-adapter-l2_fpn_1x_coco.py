# PlainMamba-Adapter-L2 + Mask R-CNN FPN, 1x: ChenhongyiYang/PlainMamba downstream/mmdetection/plain_mamba_det_configs/
# maskrcnn/l2_maskrcnn_1x.py, the L1 recipe at width 384 with drop path 0.2. Published: 53M parameters, 46.0 box AP,
# 40.6 mask AP (the original README).
_base_ = ['./mask-rcnn_plainmamba-adapter-l1_fpn_1x_coco.py', './_base_/plainmamba.py']

model = dict(backbone=_base_.plainmamba.adapter.l2, neck=dict(in_channels=[384, 384, 384, 384]))
del _base_.plainmamba  # ./_base_/plainmamba.py's helper, not a config key
