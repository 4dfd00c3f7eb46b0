"""Runs in a subprocess for test_umamba_nnunet.py (nnU-Net reads its folders from the environment at import):
writes a tiny synthetic dataset in nnU-Net's raw format, plans and preprocesses it (2d), trains a few iterations of
a vssm U-Mamba trainer on CPU (its epochs, of `iterations` iterations each), and prints a JSON report on its last
line."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def write_dataset(raw: Path, dataset: str, cases: int, seed: int = 0) -> None:
    """`cases` volumes of 4 × 48 × 48 voxels: noise plus a bright disc (label 1) with a darker core (label 2)."""
    import SimpleITK as sitk

    rng = np.random.default_rng(seed)
    folder = raw / dataset
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    _, yy, xx = np.meshgrid(np.arange(4), np.arange(48), np.arange(48), indexing="ij")
    for i in range(cases):
        cy, cx, r = rng.uniform(16, 32), rng.uniform(16, 32), rng.uniform(6, 12)
        distance = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
        label = np.where(distance < r, np.where(distance < r / 2, 2, 1), 0).astype(np.uint8)
        image = (rng.normal(0, 1, label.shape) + 2.0 * (label > 0) - 1.0 * (label == 2)).astype(np.float32)
        for array, path in ((image, folder / "imagesTr" / f"case_{i:03d}_0000.nii.gz"),
                            (label, folder / "labelsTr" / f"case_{i:03d}.nii.gz")):
            volume = sitk.GetImageFromArray(array)
            volume.SetSpacing((1.0, 1.0, 3.0))
            sitk.WriteImage(volume, str(path))
    (folder / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "MRI"},
        "labels": {"background": 0, "disc": 1, "core": 2},
        "numTraining": cases,
        "file_ending": ".nii.gz",
    }))


def main(trainer_name: str, iterations: int) -> dict:
    root = Path(os.environ["nnUNet_raw"]).parent
    dataset_id, dataset = 987, "Dataset987_VssmSynthetic"
    report: dict = {}
    start = time.perf_counter()
    write_dataset(Path(os.environ["nnUNet_raw"]), dataset, cases=6)

    import torch
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprints,
        plan_experiments,
        preprocess,
    )

    threads = torch.get_num_threads()
    # Planning sets torch's thread count to nnUNet_n_proc_DA (which must then be >= 1); training with 0 runs the
    # augmentation in this process instead of worker processes.
    os.environ["nnUNet_n_proc_DA"] = "1"
    extract_fingerprints([dataset_id], num_processes=1, check_dataset_integrity=True, verbose=False)
    plan_experiments([dataset_id])
    preprocess([dataset_id], configurations=("2d",), num_processes=(1,), verbose=False)
    report["plan_preprocess_s"] = time.perf_counter() - start
    os.environ["nnUNet_n_proc_DA"] = "0"
    torch.set_num_threads(threads)

    from batchgenerators.utilities.file_and_folder_operations import load_json

    import vssm.nnunet.trainers as trainers

    preprocessed = Path(os.environ["nnUNet_preprocessed"]) / dataset
    plans = load_json(str(preprocessed / "nnUNetPlans.json"))
    plans["continue_training"] = False  # as nnUNetv2_train's get_trainer_from_args sets it
    dataset_json = load_json(str(preprocessed / "dataset.json"))
    trainer_class = getattr(trainers, trainer_name)
    trainer = trainer_class(plans=plans, configuration="2d", fold=0, dataset_json=dataset_json,
                            device=torch.device("cpu"))
    trainer.num_iterations_per_epoch = iterations  # the epochs are the trainer's (the tests use a `_1epoch` one)
    trainer.num_val_iterations_per_epoch = 1
    start = time.perf_counter()
    trainer.run_training()
    report["train_s"] = time.perf_counter() - start
    report["train_losses"] = [float(v) for v in trainer.logger.get_value("train_losses", step=None)]
    report["val_losses"] = [float(v) for v in trainer.logger.get_value("val_losses", step=None)]
    report["epochs"] = trainer.num_epochs
    report["network"] = type(trainer.network).__name__
    report["placement"] = trainer.network.placement.value
    report["patch_size"] = list(trainer.configuration_manager.patch_size)
    report["batch_size"] = trainer.batch_size
    report["features"] = list(trainer.network.plan.features_per_stage)
    report["checkpoint"] = str(Path(trainer.output_folder) / "checkpoint_final.pth")
    report["plans"] = str(preprocessed / "nnUNetPlans.json")
    report["dataset_json"] = str(preprocessed / "dataset.json")
    report["root"] = str(root)

    # What the trained network computes (for the test's reload through vssm's loader), and the Enc network the
    # other trainer builds from the same plan, with deep supervision.
    patch = trainer.configuration_manager.patch_size
    probe = torch.randn(2, 1, *patch, generator=torch.Generator().manual_seed(0))
    network = trainer.network.eval()
    network.decoder.deep_supervision = False
    with torch.no_grad():
        torch.save({"input": probe, "output": network(probe)}, root / "probe.pt")
    enc = trainers.nnUNetTrainerUMambaEnc.build_network_architecture(
        trainer.plans_manager, trainer.configuration_manager, 1, trainer.label_manager.num_segmentation_heads, True
    )
    with torch.no_grad():
        report["enc_outputs"] = [list(t.shape) for t in enc(probe)]
    report["enc_tokens"] = [None if spec is None else spec[0].value for spec in enc.encoder.mamba_tokens]
    report["prediction"] = predict(trainer, trainer_class, Path(os.environ["nnUNet_raw"]) / dataset)
    return report


def predict(trainer, trainer_class, raw: Path) -> dict:
    """nnU-Net's sliding-window inference with the trained weights, on a network the trainer class builds for
    inference (what `nnUNetv2_predict -tr ...` does once it has found the class)."""
    import torch
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    from vssm.checkpoints import read_checkpoint

    checkpoint = read_checkpoint(Path(trainer.output_folder) / "checkpoint_final.pth")
    network = trainer_class.build_network_architecture(
        trainer.plans_manager, trainer.configuration_manager, 1, trainer.label_manager.num_segmentation_heads,
        enable_deep_supervision=False,
    )
    predictor = nnUNetPredictor(use_mirroring=False, perform_everything_on_device=False, device=torch.device("cpu"),
                                allow_tqdm=False)
    predictor.manual_initialization(network, trainer.plans_manager, trainer.configuration_manager,
                                    [checkpoint["network_weights"]], trainer.dataset_json, trainer_class.__name__,
                                    checkpoint["inference_allowed_mirroring_axes"])
    image, properties = SimpleITKIO().read_images([str(raw / "imagesTr" / "case_000_0000.nii.gz")])
    segmentation = predictor.predict_single_npy_array(image, properties)
    return {"input_shape": list(image.shape), "shape": list(segmentation.shape),
            "labels": sorted(int(v) for v in np.unique(segmentation))}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]))))
