"""nnU-Net trainers for U-Mamba: stock nnU-Net training (SGD, poly LR, Dice + CE, deep supervision, AMP on CUDA) of
vssm's `UMamba`, built from the configuration's plan exactly as the original's `get_umamba_*_from_plans`.

Each trainer also comes short, named as nnU-Net names its own (`nnUNetTrainer_5epochs`, `nnUNetTrainer_1epoch`):
`nnUNetTrainerUMambaBot_5epochs`, `nnUNetTrainerUMambaBot_1epoch`, and so on, for trying a set-up (an epoch is
nnU-Net's 250 training iterations).

Needs nnunetv2 >= 2.7 (the `build_network_architecture(plans_manager, configuration_manager, ...)` signature, which
nnU-Net also calls when it rebuilds the network for inference). See `vssm.nnunet` for making nnU-Net find them.
"""

from __future__ import annotations

import os
from typing import ClassVar

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager

from vssm.models.umamba import MambaPlacement, UMamba, UMambaPlan

_CUDA = torch.device("cuda")  # nnU-Net's default device

__all__ = [
    "network_from_plans",
    "nnUNetTrainerUMambaBot",
    "nnUNetTrainerUMambaBot_1epoch",
    "nnUNetTrainerUMambaBot_5epochs",
    "nnUNetTrainerUMambaEnc",
    "nnUNetTrainerUMambaEncNoAMP",
    "nnUNetTrainerUMambaEncNoAMP_1epoch",
    "nnUNetTrainerUMambaEncNoAMP_5epochs",
    "nnUNetTrainerUMambaEnc_1epoch",
    "nnUNetTrainerUMambaEnc_5epochs",
]


def network_from_plans(
    configuration_manager: ConfigurationManager,
    num_input_channels: int,
    num_output_channels: int,
    placement: MambaPlacement,
    deep_supervision: bool = True,
    allow_autocast: bool = True,
) -> UMamba:
    """The U-Mamba network of an nnU-Net configuration (features, kernels, strides, blocks and patch size)."""
    plan = UMambaPlan.from_nnunet(configuration_manager.configuration)
    return UMamba(
        plan,
        num_classes=num_output_channels,
        in_chans=num_input_channels,
        placement=placement,
        deep_supervision=deep_supervision,
        allow_autocast=allow_autocast,
    )


class _UMambaTrainer(nnUNetTrainer):
    placement: ClassVar[MambaPlacement]
    allow_autocast: ClassVar[bool] = True
    epochs: ClassVar[int | None] = None  # None: nnU-Net's own (1000)

    # nnU-Net records the constructor's arguments by the names of this signature: keep it nnUNetTrainer's.
    def __init__(
        self, plans: dict, configuration: str, fold: int, dataset_json: dict, device: torch.device = _CUDA
    ) -> None:
        super().__init__(plans, configuration, fold, dataset_json, device)
        if self.epochs is not None:
            self.num_epochs = self.epochs

    def _do_i_compile(self) -> bool:
        """torch.compile only on request (`nnUNet_compile=t`), as in nnU-Net 2.1.1 where U-Mamba was trained (nnU-Net
        >= 2.4 compiles by default on CUDA)."""
        requested = os.environ.get("nnUNet_compile", "").lower() in ("true", "1", "t")
        return requested and super()._do_i_compile()

    @classmethod
    def build_network_architecture(
        cls,
        plans_manager: PlansManager,
        configuration_manager: ConfigurationManager,
        num_input_channels: int,
        num_output_channels: int,
        enable_deep_supervision: bool = True,
    ) -> UMamba:
        return network_from_plans(
            configuration_manager,
            num_input_channels,
            num_output_channels,
            cls.placement,
            enable_deep_supervision,
            cls.allow_autocast,
        )


# Class names follow nnU-Net's (trainers are looked up by name, `-tr nnUNetTrainerUMambaBot`).
class nnUNetTrainerUMambaBot(_UMambaTrainer):
    """U-Mamba Bot: one Mamba layer on the bottleneck."""

    placement = MambaPlacement.BOT


class nnUNetTrainerUMambaEnc(_UMambaTrainer):
    """U-Mamba Enc: Mamba layers after the encoder stages (channel tokens where a map has few positions)."""

    placement = MambaPlacement.ENC


class nnUNetTrainerUMambaEncNoAMP(_UMambaTrainer):
    """U-Mamba Enc trained in fp32 (the original's answer to NaNs under AMP): the network ignores autocast and the
    loss is not scaled; gradients are clipped at 12 as in every nnU-Net trainer."""

    placement = MambaPlacement.ENC
    allow_autocast = False

    def __init__(
        self, plans: dict, configuration: str, fold: int, dataset_json: dict, device: torch.device = _CUDA
    ) -> None:
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.grad_scaler = None


class nnUNetTrainerUMambaBot_5epochs(nnUNetTrainerUMambaBot):
    epochs = 5


class nnUNetTrainerUMambaBot_1epoch(nnUNetTrainerUMambaBot):
    epochs = 1


class nnUNetTrainerUMambaEnc_5epochs(nnUNetTrainerUMambaEnc):
    epochs = 5


class nnUNetTrainerUMambaEnc_1epoch(nnUNetTrainerUMambaEnc):
    epochs = 1


class nnUNetTrainerUMambaEncNoAMP_5epochs(nnUNetTrainerUMambaEncNoAMP):
    epochs = 5


class nnUNetTrainerUMambaEncNoAMP_1epoch(nnUNetTrainerUMambaEncNoAMP):
    epochs = 1
