# PlainMamba-L2 + UperNet: ChenhongyiYang/PlainMamba downstream/mmsegmentation/plain_mamba_seg_configs/l2_upernet.py,
# the L1 recipe at width 384 with drop path 0.2. Published: 55M parameters, 46.8 mIoU (the original README).
_base_ = ['./upernet_plainmamba-l1_8xb2-160k_ade20k-512x512.py', './_base_/plainmamba.py']

model = dict(
    backbone=_base_.plainmamba.backbone.l2,
    decode_head=dict(in_channels=[384, 384, 384, 384]),
    auxiliary_head=dict(in_channels=384))
del _base_.plainmamba  # ./_base_/plainmamba.py's helper, not a config key
