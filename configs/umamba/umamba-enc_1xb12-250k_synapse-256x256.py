# U-Mamba Enc (2D): Mamba layers after alternate encoder stages; stages whose map has no more positions than channels
# use channel tokens, so the network runs at the plan's patch size only (training crops; slide inference with
# 256 x 256 windows). Otherwise as U-Mamba Bot.
_base_ = './umamba-bot_1xb12-250k_synapse-256x256.py'

model = dict(backbone=dict(model='umamba_enc_2d'))
