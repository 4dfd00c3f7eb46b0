"""vssm's U-Mamba trainers inside nnU-Net (the `nnunet` extra): lookup by class name, networks from plans, and
(slow) plan + preprocess + a few CPU training iterations on a synthetic raw dataset, reloaded through vssm."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kernels.tolerances import atol

pytest.importorskip("nnunetv2")

from nnunetv2.utilities.find_class_by_name import recursive_find_python_class
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

import vssm.nnunet
from vssm.models.umamba import MambaPlacement, UMamba, UMambaPlan
from vssm.nnunet import trainers

DRIVER = Path(__file__).with_name("umamba_nnunet_driver.py")
TRAINERS = ("nnUNetTrainerUMambaBot", "nnUNetTrainerUMambaEnc", "nnUNetTrainerUMambaEncNoAMP")


@pytest.mark.parametrize("name", TRAINERS)
def test_registered_trainers_are_found_by_nnunets_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         name: str) -> None:
    """`register` puts a module into a trainer package; nnU-Net's own lookup by class name then finds our class."""
    package = tmp_path / "fake_trainer_package"
    package.mkdir()
    (package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    written = vssm.nnunet.register(package)
    assert written.name == vssm.nnunet.SHIM_NAME
    found = recursive_find_python_class(str(package), name, "fake_trainer_package")
    assert found is getattr(trainers, name)
    assert vssm.nnunet.unregister(package) == written and not written.exists()
    assert vssm.nnunet.unregister(package) is None


def test_ext_trainer_folder_holds_the_trainers() -> None:
    """The folder for nnUNet_extTrainer (nnU-Net >= 2.8), as `python -m vssm.nnunet path` prints it."""
    result = subprocess.run([sys.executable, "-m", "vssm.nnunet", "path"], capture_output=True, text=True, check=True)
    folder = Path(result.stdout.strip())
    assert folder == vssm.nnunet.EXT_TRAINER_DIR
    found = recursive_find_python_class(str(folder), "nnUNetTrainerUMambaBot", "vssm.nnunet.ext_trainers")
    assert found is trainers.nnUNetTrainerUMambaBot


def test_nnunet_finds_the_trainers_through_nnunet_ext_trainer(monkeypatch: pytest.MonkeyPatch) -> None:
    """nnU-Net >= 2.8 searches the folders of `nnUNet_extTrainer` when a trainer is not in its package."""
    find_objects = pytest.importorskip("nnunetv2.utilities.find_objects", reason="nnU-Net < 2.8: no nnUNet_extTrainer")
    monkeypatch.setenv("nnUNet_extTrainer", str(vssm.nnunet.EXT_TRAINER_DIR))
    for name in TRAINERS:
        assert find_objects.recursive_find_trainer_class_by_name(name) is getattr(trainers, name)


def test_trainers_compile_only_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """nnU-Net >= 2.4 would torch.compile the network on CUDA by default; ours only with nnUNet_compile=t."""
    trainer = object.__new__(trainers.nnUNetTrainerUMambaBot)  # no plans needed for this decision
    trainer.device = torch.device("cuda")
    monkeypatch.delenv("nnUNet_compile", raising=False)
    assert not trainer._do_i_compile()


def _plans(ndim: int) -> dict:
    if ndim == 2:
        patch, kernels, strides = [32, 32], [[3, 3]] * 4, [[1, 1], [2, 2], [2, 2], [2, 2]]
    else:
        patch, kernels = [8, 32, 32], [[1, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]]
        strides = [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]]
    configuration = {
        "data_identifier": "x", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2, "patch_size": patch,
        "architecture": {
            "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "arch_kwargs": {
                "n_stages": 4, "features_per_stage": [8, 16, 32, 64], "conv_op": f"torch.nn.modules.conv.Conv{ndim}d",
                "kernel_sizes": kernels, "strides": strides, "n_conv_per_stage": [2, 2, 2, 2],
                "n_conv_per_stage_decoder": [2, 2, 2], "conv_bias": True,
            },
            "_kw_requires_import": ["conv_op"],
        },
    }
    return {"dataset_name": "Dataset001_X", "plans_name": "nnUNetPlans", "configurations": {"cfg": configuration}}


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("name", TRAINERS)
def test_trainers_build_our_network_from_the_plan(name: str, ndim: int) -> None:
    """nnU-Net calls `build_network_architecture(plans_manager, configuration_manager, in, out, deep_supervision)`
    for training and again (deep supervision off) for inference."""
    plans = PlansManager(_plans(ndim))
    configuration = plans.get_configuration("cfg")
    trainer = getattr(trainers, name)
    network = trainer.build_network_architecture(plans, configuration, 2, 3, enable_deep_supervision=True)
    assert isinstance(network, UMamba)
    assert network.plan == UMambaPlan.from_nnunet(configuration.configuration)
    assert network.placement is (MambaPlacement.BOT if name.endswith("Bot") else MambaPlacement.ENC)
    assert network.allow_autocast is (not name.endswith("NoAMP"))
    x = torch.randn(1, 2, *configuration.patch_size)
    with torch.no_grad():
        outputs = network(x)
        assert [o.shape[-ndim:] for o in outputs] == [tuple(s) for s in [configuration.patch_size,
                                                                         *network.plan.feature_map_sizes(x.shape[2:])[1:-1]]]
        inference = trainer.build_network_architecture(plans, configuration, 2, 3, enable_deep_supervision=False)
        assert inference(x).shape == (1, 3, *configuration.patch_size)


@pytest.mark.slow
def test_plan_preprocess_and_train_bot_on_cpu(tmp_path: Path) -> None:
    """nnU-Net's own planning and preprocessing of a raw dataset, then nnUNetTrainerUMambaBot for a few iterations
    (one epoch of 3 training and 1 validation iteration) on CPU, nnU-Net's sliding-window prediction with the trained
    weights, and the checkpoint reloaded by vssm."""
    env = dict(os.environ)
    for name in ("raw", "preprocessed", "results"):
        (tmp_path / name).mkdir()
        env[f"nnUNet_{name}"] = str(tmp_path / name)
    result = subprocess.run(
        [sys.executable, str(DRIVER), "nnUNetTrainerUMambaBot", "3"], env=env, capture_output=True, text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["network"] == "UMamba" and report["placement"] == "bot"
    assert len(report["train_losses"]) == 1 and all(map(torch.isfinite, torch.tensor(report["train_losses"])))
    assert all(map(torch.isfinite, torch.tensor(report["val_losses"])))
    patch = report["patch_size"]
    assert report["enc_outputs"][0] == [2, 3, *patch]
    assert "channel" in report["enc_tokens"], "the planned 2D Enc network should have a channel-token stage"
    prediction = report["prediction"]  # sliding-window inference of the trained network on a raw volume
    assert prediction["shape"] == prediction["input_shape"][1:]
    assert set(prediction["labels"]) <= {0, 1, 2}

    model = UMamba.from_nnunet_checkpoint(report["checkpoint"]).eval()
    assert model.placement is MambaPlacement.BOT and model.plan.patch_size == tuple(patch)
    probe = torch.load(tmp_path / "probe.pt", weights_only=True)
    with torch.no_grad():
        out = model(probe["input"])
    # Same weights; only float32 rounding may differ between the two processes (thread counts).
    bound = atol(torch.float32) * max(1.0, float(probe["output"].abs().max()))
    torch.testing.assert_close(out, probe["output"], rtol=0, atol=bound)
    same = UMamba.from_nnunet_checkpoint(report["checkpoint"], plans=report["plans"],
                                         dataset_json=report["dataset_json"], configuration="2d")
    assert same.plan == model.plan
