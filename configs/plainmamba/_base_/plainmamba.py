# PlainMamba's backbones in the segmentation configs of this folder, one entry a released variant: the network, its
# ImageNet checkpoint on the authors' Hugging Face page, the layers that feed UperNet and the drop path of the
# original config (ChenhongyiYang/PlainMamba downstream/mmsegmentation/plain_mamba_seg_configs/l{1,2,3}_upernet.py).
# A config reads `_base_.plainmamba.backbone.<variant>` and its last line deletes `_base_.plainmamba`: it is a helper
# shared by the configs, not a key of any merged config. The checkpoints are mmcls classifiers: their backbone is
# under `backbone.` (the original's `prefix`).
plainmamba = dict(backbone=dict(
    l1=dict(
        _delete_=True, type='PlainMambaBackbone', model='plainmamba_l1', out_indices=(5, 11, 17, 23),
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint='https://huggingface.co/ChenhongyiYang/PlainMamba/resolve/main/l1.pth',
                      prefix='backbone.')),
    l2=dict(
        model='plainmamba_l2', drop_path_rate=0.2,
        init_cfg=dict(checkpoint='https://huggingface.co/ChenhongyiYang/PlainMamba/resolve/main/l2.pth')),
    l3=dict(
        model='plainmamba_l3', out_indices=(8, 17, 26, 35), drop_path_rate=0.3,
        init_cfg=dict(checkpoint='https://huggingface.co/ChenhongyiYang/PlainMamba/resolve/main/l3.pth'))))
