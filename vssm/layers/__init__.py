"""Layers shared by the model families (mixers, SSM cores, norms, patch embeds).

Import from the submodules, e.g. `from vssm.layers.mamba_mixer import MambaMixer`.
"""
