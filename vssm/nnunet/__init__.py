"""nnU-Net v2 integration: trainers that build vssm's U-Mamba networks from nnU-Net's plans.

Install with the `nnunet` extra (`pip install "vssm[nnunet]"`), then make the trainers visible to nnU-Net, which
finds trainers by class name:

* nnU-Net >= 2.8: point its external-trainer search path at vssm,
  `export nnUNet_extTrainer=$(python -m vssm.nnunet path)` (nothing is written);
* nnU-Net 2.7 (what pip resolves next to vssm's timm pin; it has no `nnUNet_extTrainer`): `python -m vssm.nnunet
  register` writes a one-line module into nnU-Net's trainer package, inside its installation in site-packages
  (`python -m vssm.nnunet unregister` removes it).

Then train as usual: `nnUNetv2_train DATASET 2d 0 -tr nnUNetTrainerUMambaBot` (or `nnUNetTrainerUMambaEnc`,
`nnUNetTrainerUMambaEncNoAMP`; each also as `..._5epochs` and `..._1epoch`, as nnU-Net's own short trainers; on a
CPU add `-device cpu`). Predictions (`nnUNetv2_predict -tr ...`) find the same classes.
Trainers: `vssm.nnunet.trainers` (imports nnunetv2). Registration: `vssm.nnunet.registration`.
"""

from .registration import EXT_TRAINER_DIR, SHIM_NAME, register, unregister

__all__ = ["EXT_TRAINER_DIR", "SHIM_NAME", "register", "unregister"]
