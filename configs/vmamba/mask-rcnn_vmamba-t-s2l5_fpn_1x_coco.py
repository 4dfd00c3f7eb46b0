# VMamba-T[s2l5] (the original's "tiny1": ssm_ratio 2, depths 2-2-5-2). Reported: 47.4 box AP, 42.7 mask AP, 50M.
_base_ = ['./mask-rcnn_vmamba-t_fpn_1x_coco.py', './_base_/vmamba.py']

model = dict(backbone=_base_.vmamba.backbone.tiny_s2l5)
del _base_.vmamba  # ./_base_/vmamba.py's helper, not a config key
