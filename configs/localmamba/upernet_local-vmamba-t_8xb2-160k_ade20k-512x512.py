# LocalVMamba-T + UperNet, 160k iterations on ADE20K at 512 x 512: hunto/LocalMamba segmentation/configs/local_mamba/
# upernet_local_vssm_tiny_8xb2-160k_ade20k-512x512.py, which is mmseg's Swin-T UperNet 160k (AdamW lr 6e-5, wd 0.01,
# no weight decay on norms, 1500 linear warm-up iterations then poly; 8 GPUs x 2 images) with LocalVMamba's backbone
# (drop path 0.1). The original points at local_vssm_tiny.ckpt, which is not released (LocalMamba#40, #42): set
# model.backbone.init_cfg.checkpoint to a LocalVMamba-T checkpoint of your own. No results are published.
_base_ = ['mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py', './_base_/localmamba.py']

custom_imports = dict(imports=['vssm.mm'], allow_failed_imports=False)

model = dict(
    backbone=dict(_base_.localmamba.backbone.vmamba_tiny, drop_path_rate=0.1),
    decode_head=dict(in_channels=[96, 192, 384, 768], num_classes=150),
    auxiliary_head=dict(in_channels=384, num_classes=150))

train_dataloader = dict(batch_size=2)
del _base_.localmamba  # ./_base_/localmamba.py's helper, not a config key
