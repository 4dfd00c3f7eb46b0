"""The folder nnU-Net's `nnUNet_extTrainer` points at (`python -m vssm.nnunet path`): one re-exporting module."""
