# PlainMamba-L3 + UperNet: ChenhongyiYang/PlainMamba downstream/mmsegmentation/plain_mamba_seg_configs/l3_upernet.py,
# the L1 recipe at width 448 and depth 36 (outputs of layers 8, 17, 26, 35) with drop path 0.3. Published: 81M
# parameters, 49.1 mIoU (the original README).
_base_ = ['./upernet_plainmamba-l1_8xb2-160k_ade20k-512x512.py', './_base_/plainmamba.py']

model = dict(
    backbone=_base_.plainmamba.backbone.l3,
    decode_head=dict(in_channels=[448, 448, 448, 448]),
    auxiliary_head=dict(in_channels=448))
del _base_.plainmamba  # ./_base_/plainmamba.py's helper, not a config key
