"""vssm's U-Mamba trainers, exposed where nnU-Net looks for trainers by class name (see `vssm.nnunet`)."""

from vssm.nnunet.trainers import (  # noqa: F401
    nnUNetTrainerUMambaBot,
    nnUNetTrainerUMambaEnc,
    nnUNetTrainerUMambaEncNoAMP,
)
