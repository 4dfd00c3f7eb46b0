# LocalVMamba-S + UperNet 160k: hunto/LocalMamba segmentation/configs/local_mamba/
# upernet_local_vssm_small_8xb2-160k_ade20k-512x512.py (the tiny recipe with LocalVMamba-S, drop path 0.2, its
# released ImageNet checkpoint, mixed precision).
_base_ = ['./upernet_local-vmamba-t_8xb2-160k_ade20k-512x512.py', './_base_/localmamba.py']

model = dict(backbone=dict(_base_.localmamba.backbone.vmamba_small, drop_path_rate=0.2))

optim_wrapper = dict(type='AmpOptimWrapper')
del _base_.localmamba  # ./_base_/localmamba.py's helper, not a config key
