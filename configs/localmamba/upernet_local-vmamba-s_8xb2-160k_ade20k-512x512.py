# LocalVMamba-S + UperNet 160k: hunto/LocalMamba segmentation/configs/local_mamba/
# upernet_local_vssm_small_8xb2-160k_ade20k-512x512.py (the tiny recipe with LocalVMamba-S, drop path 0.2, its
# released ImageNet checkpoint, mixed precision).
_base_ = './upernet_local-vmamba-t_8xb2-160k_ade20k-512x512.py'

model = dict(
    backbone=dict(
        model='local_vssm_small',
        drop_path_rate=0.2,
        init_cfg=dict(checkpoint='https://github.com/hunto/LocalMamba/releases/download/v1.0.0/local_vssm_small.ckpt')))

optim_wrapper = dict(type='AmpOptimWrapper')
