"""vssm's U-Mamba trainers, exposed where nnU-Net looks for trainers by class name (see `vssm.nnunet`)."""

from vssm.nnunet.trainers import (  # noqa: F401
    nnUNetTrainerUMambaBot,
    nnUNetTrainerUMambaBot_1epoch,
    nnUNetTrainerUMambaBot_5epochs,
    nnUNetTrainerUMambaEnc,
    nnUNetTrainerUMambaEnc_1epoch,
    nnUNetTrainerUMambaEnc_5epochs,
    nnUNetTrainerUMambaEncNoAMP,
    nnUNetTrainerUMambaEncNoAMP_1epoch,
    nnUNetTrainerUMambaEncNoAMP_5epochs,
)
