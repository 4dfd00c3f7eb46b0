# MambaVision-B (layer scale 1e-5) + UperNet 160k, ADE20K 512: drop path 0.4, 16 GPUs x 1 image.
# Reported: 49.1 mIoU, 126M params.
_base_ = './upernet_mambavision-t_16xb1-160k_ade20k-512x512.py'

model = dict(
    backbone=dict(
        model='mambavision_base',
        drop_path_rate=0.4,
        init_cfg=dict(checkpoint='https://huggingface.co/nvidia/MambaVision-B-1K/resolve/main/mambavision_base_1k.pth.tar')),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
