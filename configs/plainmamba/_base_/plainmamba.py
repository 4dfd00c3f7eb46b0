# PlainMamba's backbones in the configs of this folder, one entry a released variant: the network, its ImageNet
# checkpoint on the authors' Hugging Face page, the layers that feed UperNet and the drop path of the original config
# (ChenhongyiYang/PlainMamba downstream/mmsegmentation/plain_mamba_seg_configs/l{1,2,3}_upernet.py) under `backbone`;
# the detectors' PlainMamba-Adapter under `adapter`. A config reads `_base_.plainmamba.backbone.<variant>` (or
# `.adapter.<variant>`) and its last line deletes `_base_.plainmamba`: it is a helper
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
        init_cfg=dict(checkpoint='https://huggingface.co/ChenhongyiYang/PlainMamba/resolve/main/l3.pth'))),
    # The detectors' backbone: the adapter of the original's downstream/mmdetection/plain_mamba_det_configs/
    # {maskrcnn,retinanet}/l{1,2,3}_*_1x.py (the same for Mask R-CNN and RetinaNet), over the ImageNet checkpoints.
    adapter=dict(
        l1=dict(
            _delete_=True, type='PlainMambaAdapter', model='plainmamba_l1', conv_inplane=64, n_points=4,
            deform_num_heads=6, cffn_ratio=0.25, deform_ratio=1.0,
            interaction_indexes=[[0, 5], [6, 11], [12, 17], [18, 23]], drop_path_rate=0.1,
            init_cfg=dict(type='Pretrained', checkpoint='https://huggingface.co/ChenhongyiYang/PlainMamba/resolve/main/l1.pth',
                          prefix='backbone.')),
        l2=dict(
            model='plainmamba_l2', drop_path_rate=0.2,
            init_cfg=dict(checkpoint='https://huggingface.co/ChenhongyiYang/PlainMamba/resolve/main/l2.pth')),
        l3=dict(
            model='plainmamba_l3', deform_num_heads=8, interaction_indexes=[[0, 8], [9, 17], [18, 26], [27, 35]],
            drop_path_rate=0.3,
            init_cfg=dict(checkpoint='https://huggingface.co/ChenhongyiYang/PlainMamba/resolve/main/l3.pth'))),
    # The detectors' optimizer (the original's template/{maskrcnn,retinanet}_1x.py): AdamW lr 1e-4, wd 0.05, no weight
    # decay on the level and position embeddings, norms, biases, A_log, D and the direction tokens.
    det_optim_wrapper=dict(
        optimizer=dict(_delete_=True, type='AdamW', lr=0.0001, weight_decay=0.05),
        paramwise_cfg=dict(custom_keys={
            'level_embed': dict(decay_mult=0.0), 'pos_embed': dict(decay_mult=0.0), 'norm': dict(decay_mult=0.0),
            'bias': dict(decay_mult=0.0), '.A_log': dict(decay_mult=0.0), '.D': dict(decay_mult=0.0),
            '.direction_Bs': dict(decay_mult=0.0)})))
