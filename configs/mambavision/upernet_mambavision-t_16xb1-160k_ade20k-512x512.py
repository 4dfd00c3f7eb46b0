# MambaVision-T + UperNet, 160k iterations on ADE20K at 512 x 512: NVlabs/MambaVision semantic_segmentation/configs/
# mamba_vision/mamba_vision_160k_ade20k-512x512_tiny.py, i.e. Swin's UperNet 160k (heads, data, 1500 warm-up
# iterations then poly) with AdamW lr 5e-5, wd 0.01, no weight decay on norms, mixed precision, 16 GPUs x 1 image.
# The hybrid levels take one window over the padded map (64 and 32 tokens a side). drop_path_rate is honoured (the
# original wrapper trained with 0.2 whatever the config said). Reported: 46.0 mIoU, 55M params, 945 GFLOPs.
_base_ = ['mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py',
          './_base_/mambavision.py']

custom_imports = dict(imports=['vssm.mm'], allow_failed_imports=False)

model = dict(
    backbone=dict(_base_.mambavision.backbone.tiny, window_size=(8, 8, 64, 32), drop_path_rate=0.3),
    decode_head=dict(in_channels=[80, 160, 320, 640], num_classes=150),
    auxiliary_head=dict(in_channels=320, num_classes=150))

optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))
train_dataloader = dict(batch_size=1)
del _base_.mambavision  # ./_base_/mambavision.py's helper, not a config key
