# PlainMamba-Adapter-L3 + Mask R-CNN FPN, 1x: ChenhongyiYang/PlainMamba downstream/mmdetection/plain_mamba_det_configs/
# maskrcnn/l3_maskrcnn_1x.py, the L1 recipe at width 448 and depth 36 (interaction blocks over layers 0-8, 9-17,
# 18-26, 27-35, 8 attention heads) with drop path 0.3. Published: 79M parameters, 46.8 box AP, 41.2 mask AP (the
# original README).
_base_ = ['./mask-rcnn_plainmamba-adapter-l1_fpn_1x_coco.py', './_base_/plainmamba.py']

model = dict(backbone=_base_.plainmamba.adapter.l3, neck=dict(in_channels=[448, 448, 448, 448]))
del _base_.plainmamba  # ./_base_/plainmamba.py's helper, not a config key
