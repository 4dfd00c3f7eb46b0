"""vssm's U-Mamba trainers inside nnU-Net (the `nnunet` extra): lookup by class name, networks from plans, and
(slow) plan + preprocess + a few CPU training iterations on a synthetic raw dataset, reloaded through vssm."""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vssm.kernels.tolerances import atol

pytest.importorskip("nnunetv2")

from nnunetv2.training.nnUNetTrainer import nnUNetTrainer as nnunet_trainer_module
from nnunetv2.utilities.find_class_by_name import recursive_find_python_class
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

import vssm.nnunet
import vssm.nnunet.__main__ as nnunet_cli
from vssm.models.umamba import MambaPlacement, UMamba, UMambaPlan
from vssm.nnunet import registration, trainers

DRIVER = Path(__file__).with_name("umamba_nnunet_driver.py")
FULL_TRAINERS = ("nnUNetTrainerUMambaBot", "nnUNetTrainerUMambaEnc", "nnUNetTrainerUMambaEncNoAMP")
# nnU-Net's own short variants are `nnUNetTrainer_5epochs` and `nnUNetTrainer_1epoch`: each of ours has both.
SHORT_TRAINERS = {f"{name}_{suffix}": (name, epochs) for name in FULL_TRAINERS
                  for suffix, epochs in (("5epochs", 5), ("1epoch", 1))}
TRAINERS = (*FULL_TRAINERS, *SHORT_TRAINERS)


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


def test_ext_trainer_folder_works_as_nnunet_2_8_imports_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """What nnU-Net 2.8 does with each `nnUNet_extTrainer` folder, for a machine without it (pip resolves 2.7 next to
    our timm pin): the folder goes on sys.path and each of its modules is imported by its bare name, outside any
    package; the class is looked up on the module."""
    folder = str(vssm.nnunet.EXT_TRAINER_DIR)
    monkeypatch.syspath_prepend(folder)
    modules = [name for _, name, is_package in pkgutil.iter_modules([folder]) if not is_package]
    assert modules == [vssm.nnunet.SHIM_NAME.removesuffix(".py")]
    monkeypatch.delitem(sys.modules, modules[0], raising=False)
    module = importlib.import_module(modules[0])
    monkeypatch.delitem(sys.modules, modules[0])
    for name in TRAINERS:
        assert getattr(module, name) is getattr(trainers, name)


@pytest.fixture
def nnunet_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """nnU-Net's preprocessed and results folders, which its trainers need to be constructed: read from the
    environment when used (2.8) or when nnU-Net's trainer module was imported (2.7)."""
    for name in ("nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(name, str(tmp_path))
        if getattr(nnunet_trainer_module, name) is None or isinstance(getattr(nnunet_trainer_module, name), str):
            monkeypatch.setattr(nnunet_trainer_module, name, str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("name", list(SHORT_TRAINERS))
def test_short_trainers_are_their_trainer_for_fewer_epochs(nnunet_folders: Path, name: str) -> None:
    full_name, epochs = SHORT_TRAINERS[name]
    short, full = getattr(trainers, name), getattr(trainers, full_name)
    assert issubclass(short, full) and short.placement is full.placement
    dataset_json = {"labels": {"background": 0, "disc": 1}, "channel_names": {"0": "MRI"}, "file_ending": ".nii.gz",
                    "numTraining": 2}
    built = {}
    for cls in (short, full):
        plans = {**_plans(2), "continue_training": False}  # nnU-Net's get_trainer_from_args sets it
        built[cls] = cls(plans, "cfg", 0, dataset_json, torch.device("cpu"))
    assert built[short].num_epochs == epochs and built[full].num_epochs == 1000
    # nnU-Net records the constructor's arguments (a checkpoint's `init_args`) by the signature's names.
    assert built[short].my_init_kwargs.keys() == built[full].my_init_kwargs.keys()
    assert built[short].output_folder != built[full].output_folder  # results under the trainer's own name
    if full_name.endswith("NoAMP"):
        assert built[short].grad_scaler is None and not short.allow_autocast


def test_path_says_when_nnunet_does_not_read_ext_trainer(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    for reads, note in ((False, "does not read nnUNet_extTrainer"), (True, None)):
        monkeypatch.setattr(nnunet_cli, "nnunet_reads_ext_trainer", lambda reads=reads: reads)
        assert nnunet_cli.main(["path"]) == 0
        out, err = capsys.readouterr()
        assert out == f"{vssm.nnunet.EXT_TRAINER_DIR}\n"  # alone on stdout, for $(python -m vssm.nnunet path)
        assert (note in err and "python -m vssm.nnunet register" in err) if note else err == ""


def test_register_says_it_writes_into_site_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Into nnU-Net's own trainer package (here a stand-in folder): the output says where, how to undo it and, where
    nnU-Net reads nnUNet_extTrainer (2.8), the way that writes nothing."""
    monkeypatch.setattr(registration, "_nnunet_trainer_dir", lambda: tmp_path)
    for reads in (False, True):
        monkeypatch.setattr(nnunet_cli, "nnunet_reads_ext_trainer", lambda reads=reads: reads)
        assert nnunet_cli.main(["register"]) == 0
        out = capsys.readouterr().out
        assert f"wrote {tmp_path / vssm.nnunet.SHIM_NAME}" in out and "site-packages" in out and "unregister" in out
        assert ("export nnUNet_extTrainer=$(python -m vssm.nnunet path)" in out) is reads
    assert nnunet_cli.main(["unregister"]) == 0 and not (tmp_path / vssm.nnunet.SHIM_NAME).exists()
    for command in ([], ["register"], ["unregister"]):
        with pytest.raises(SystemExit):
            nnunet_cli.main([*command, "--help"])
        assert "site-packages" in capsys.readouterr().out


def test_register_into_a_missing_folder_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        nnunet_cli.main(["register", "--trainer-dir", str(tmp_path / "missing")])
    assert exit_info.value.code == 2 and capsys.readouterr().err.strip().endswith("does not exist")


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
@pytest.mark.parametrize("name", FULL_TRAINERS)  # the short ones inherit it
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
    """nnU-Net's own planning and preprocessing of a raw dataset, then nnUNetTrainerUMambaBot_1epoch for a few
    iterations (its one epoch, of 3 training and 1 validation iteration) on CPU, nnU-Net's sliding-window prediction
    with the trained weights, and the checkpoint reloaded by vssm (the placement from the trainer's name)."""
    env = dict(os.environ)
    for name in ("raw", "preprocessed", "results"):
        (tmp_path / name).mkdir()
        env[f"nnUNet_{name}"] = str(tmp_path / name)
    result = subprocess.run(
        [sys.executable, str(DRIVER), "nnUNetTrainerUMambaBot_1epoch", "3"], env=env, capture_output=True, text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["network"] == "UMamba" and report["placement"] == "bot" and report["epochs"] == 1
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
