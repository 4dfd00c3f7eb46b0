"""Train any vssm (or timm) classifier on ImageFolder data, on the timm toolbox with albumentations augmentation.

    python tools/train_cls.py --model vim_small --data imagenet --output runs/vim_small \\
        --batch-size 128 --lr 1e-3 --weight-decay 0.05 --drop-path 0.05 --model-ema
    torchrun --nproc_per_node 8 tools/train_cls.py --model vmamba_tiny --data imagenet --output runs/vmamba_tiny \\
        --amp bf16 --clip-grad 5 --grad-checkpointing
    python tools/make_demo_data.py demo_digits && python tools/train_cls.py --model test_vmamba \\
        --data demo_digits --output runs/digits --img-size 32 --epochs 3 --batch-size 64 --lr 2e-3 --device cpu

--data holds train/ and val/ (ImageFolder directories; or give --train / --val, directories or '<path> <label>'
list files). Defaults follow the DeiT / Vim ImageNet recipe: AdamW, cosine schedule with warm-up, label smoothing 0.1,
Mixup 0.8 / CutMix 1.0, RandAugment-like m9, random erasing 0.25. Each epoch ends with an evaluation (the model's and,
with --model-ema, the EMA's weights) through the same code and preprocessing as eval_imagenet.py; --output receives
log.csv, args.json, summary.json, last.pth (resume with --resume auto) and best.pth. Checkpoints are timm-style
({'state_dict', 'state_dict_ema', ...}) and name their model, classes and evaluation preprocessing, so
`eval_imagenet.py --checkpoint OUTPUT/last.pth --data VAL` needs nothing else.
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import random
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
from timm.data import Mixup
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.utils import ModelEmaV3, NativeScaler
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

import vssm  # noqa: F401  (registers the models)
from vssm.analysis.tables import machine_description, markdown_table, write_csv
from vssm.checkpoints import is_vssm_checkpoint, model_kwargs_for_size, read_checkpoint, save_train_checkpoint
from vssm.data import (
    BadImages,
    ImageSamples,
    Samples,
    TrainAugmentation,
    build_train_transform,
    collate_samples,
    eval_preprocessing,
    find_samples,
    saved_data_config,
)
from vssm.data.augment import MAX_MAGNITUDE
from vssm.engine import (
    Distributed,
    EvalResult,
    Precision,
    ShardSampler,
    StepOptions,
    cleanup_distributed,
    evaluate,
    setup_distributed,
    train_one_epoch,
)
from vssm.engine.arguments import (
    COUNT,
    MAX_DEFAULT_WORKERS,
    NON_NEGATIVE,
    POSITIVE,
    POSITIVE_COUNT,
    PROBABILITY,
    Range,
    add_amp_argument,
    default_workers,
)
from vssm.engine.train import CLIP_MODES
from vssm.zoo import resolve_names

MAX_SEED = 2**31 - 1  # numpy's generator takes seeds below 2**32, and each process adds its rank


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--model", required=True, help="registered model name")
    add("--model-kwargs", nargs="*", default=[], metavar="KEY=VALUE",
        help="extra constructor arguments (Python literals or names), e.g. scan=cross depths=(1,1,2,1)")
    add("--pretrained", action="store_true", help="start from the model's released weights (new classifier)")
    add("--drop-path", type=Range(float, 0, 1, high_open=True), help="stochastic depth rate (default: the model's)")
    add("--grad-checkpointing", action="store_true", help="recompute activations in the backward (less memory)")
    add("--channels-last", action="store_true")
    add("--data", type=Path, help="folder with train/ and val/ ImageFolder directories")
    add("--train", type=Path, help="training data (ImageFolder directory or list file; default DATA/train)")
    add("--val", type=Path, help="validation data (default DATA/val)")
    add("--img-size", type=POSITIVE_COUNT, help="training and evaluation resolution (default: the model's)")
    add("--eval-crop-pct", type=Range(float, 0, 1, low_open=True),
        help="evaluation center-crop fraction (default: the model's)")
    add("--batch-size", type=POSITIVE_COUNT, default=128, help="per process")
    add("--val-batch-size", type=POSITIVE_COUNT, help="per process (default: --batch-size)")
    workers = default_workers()
    add("--workers", type=COUNT, default=workers,
        help=f"data-loading processes per training process (0: in the main process; default here: {workers}, the "
             f"usable CPUs / torchrun's processes on this node, at most {MAX_DEFAULT_WORKERS})")
    add("--bad-images", choices=[b.value for b in BadImages], default=BadImages.FAIL.value,
        help="unreadable images: stop with their path (fail, default) or leave them out (skip)")
    add("--scale", type=Range(float, 0, 1, low_open=True), nargs=2, default=(0.08, 1.0), metavar=("MIN", "MAX"),
        help="RandomResizedCrop area range")
    add("--ratio", type=POSITIVE, nargs=2, default=(3 / 4, 4 / 3), metavar=("MIN", "MAX"),
        help="RandomResizedCrop aspect range")
    add("--hflip", type=PROBABILITY, default=0.5, help="horizontal flip probability")
    add("--color-jitter", type=NON_NEGATIVE, default=0.4, help="brightness/contrast/saturation strength (0: off)")
    add("--rand-ops", type=COUNT, default=2, help="RandAugment-like operations per image (0: off)")
    add("--rand-magnitude", type=Range(float, 0, MAX_MAGNITUDE), default=9.0,
        help=f"their strength, 0-{MAX_MAGNITUDE:g}")
    add("--reprob", type=PROBABILITY, default=0.25, help="random erasing probability")
    add("--mixup", type=NON_NEGATIVE, default=0.8, help="Mixup alpha (0: off)")
    add("--cutmix", type=NON_NEGATIVE, default=1.0, help="CutMix alpha (0: off)")
    add("--mixup-prob", type=PROBABILITY, default=1.0, help="probability of mixing a batch")
    add("--mixup-switch-prob", type=PROBABILITY, default=0.5, help="probability of CutMix instead of Mixup")
    add("--smoothing", type=Range(float, 0, 1, high_open=True), default=0.1, help="label smoothing")
    add("--opt", default="adamw", help="timm optimizer name (adamw, sgd, lamb, ...)")
    add("--lr", type=POSITIVE, default=5e-4, help="peak learning rate (for the whole batch over all processes)")
    add("--weight-decay", type=NON_NEGATIVE, default=0.05)
    add("--momentum", type=Range(float, 0, 1), default=0.9)
    add("--clip-grad", type=POSITIVE, help="gradient clipping threshold (default: off)")
    add("--clip-mode", choices=CLIP_MODES, default="norm")
    add("--sched", default="cosine", help="timm scheduler name (cosine, step, multistep, plateau, ...)")
    add("--epochs", type=POSITIVE_COUNT, default=300)
    add("--warmup-epochs", type=COUNT, default=5)
    add("--warmup-lr", type=NON_NEGATIVE, default=1e-6)
    add("--min-lr", type=NON_NEGATIVE, default=1e-5)
    add("--cooldown-epochs", type=COUNT, default=0)
    add("--model-ema", action="store_true", help="keep an exponential moving average of the weights")
    add("--model-ema-decay", type=Range(float, 0, 1), default=0.9998)
    add("--model-ema-warmup", action="store_true", help="ramp the EMA decay up over the first updates")
    add_amp_argument(parser)
    add("--device", help="cpu, cuda (default: cuda when available; torchrun: one GPU per process)")
    add("--seed", type=Range(int, 0, MAX_SEED), default=0, help="random seed (each process adds its rank)")
    add("--output", type=Path, required=True, help="folder for logs and checkpoints")
    add("--resume", help="checkpoint to continue from ('auto': OUTPUT/last.pth when it exists)")
    add("--eval-every", type=POSITIVE_COUNT, default=1, help="evaluate every N epochs (and after the last)")
    add("--no-progress", action="store_true", help="no progress bars")
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.train is None or args.val is None:
        if args.data is None:
            parser.error("give --data (with train/ and val/) or both --train and --val")
        args.train = args.train or args.data / "train"
        args.val = args.val or args.data / "val"
    for name in ("scale", "ratio"):
        low, high = getattr(args, name)
        if low > high:
            parser.error(f"argument --{name}: expected MIN <= MAX, got {low:g} {high:g}")
    args.val_batch_size = args.val_batch_size or args.batch_size
    return args


def parse_model_kwargs(items: list[str]) -> dict[str, Any]:
    """['scan=cross', 'depths=(1,1,2,1)'] -> {'scan': 'cross', 'depths': (1, 1, 2, 1)}."""
    kwargs = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"--model-kwargs: expected KEY=VALUE, got {item!r}")
        try:
            kwargs[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            kwargs[key] = text  # a bare name such as scan=cross
    return kwargs


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002  (timm's Mixup draws from the global numpy generator)
    torch.manual_seed(seed)


def build_loss(args: argparse.Namespace, num_classes: int) -> tuple[nn.Module, Mixup | None]:
    """The training loss and the batch mixer: soft-target CE with Mixup/CutMix (which then smooths the labels),
    label-smoothing CE, or plain CE."""
    if args.mixup > 0 or args.cutmix > 0:
        mixup = Mixup(mixup_alpha=args.mixup, cutmix_alpha=args.cutmix, prob=args.mixup_prob,
                      switch_prob=args.mixup_switch_prob, label_smoothing=args.smoothing, num_classes=num_classes)
        return SoftTargetCrossEntropy(), mixup
    if args.smoothing > 0:
        return LabelSmoothingCrossEntropy(smoothing=args.smoothing), None
    return nn.CrossEntropyLoss(), None


def plain(value: Any) -> Any:
    """Paths as strings, so args.json and the checkpoint stay weights-only loadable."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


class Run:
    """Everything a training run builds from its arguments, and its loop."""

    def __init__(self, args: argparse.Namespace, ctx: Distributed) -> None:
        self.args, self.ctx = args, ctx
        self.precision = Precision.from_flag(args.amp)
        self.bad_images = BadImages(args.bad_images)
        self.train_samples = find_samples(args.train)
        self.val_samples = find_samples(args.val, class_names=self.train_samples.classes)
        self.num_classes = len(self.train_samples.classes)
        (self.arch,) = resolve_names([args.model], allow_timm=True)
        self.model_kwargs = parse_model_kwargs(args.model_kwargs)
        if args.img_size is not None:
            self.model_kwargs.update(model_kwargs_for_size(self.arch, args.img_size))
        if args.drop_path is not None:
            self.model_kwargs["drop_path_rate"] = args.drop_path
        try:
            model = timm.create_model(self.arch, pretrained=args.pretrained, num_classes=self.num_classes,
                                      **self.model_kwargs)
        except TypeError as exc:
            raise ValueError(f"{self.arch}: cannot be built with {self.model_kwargs}: {exc}") from None
        self.preprocessing = eval_preprocessing(
            model.pretrained_cfg, {"img_size": args.img_size, "crop_pct": args.eval_crop_pct})
        config = self.preprocessing.config
        self.augmentation = TrainAugmentation(
            size=tuple(config["input_size"][1:]), scale=tuple(args.scale), ratio=tuple(args.ratio), hflip=args.hflip,
            color_jitter=args.color_jitter, rand_ops=args.rand_ops, rand_magnitude=args.rand_magnitude,
            erase_prob=args.reprob, interpolation=config["interpolation"], mean=tuple(config["mean"]),
            std=tuple(config["std"]))
        self.train_loader = self._train_loader(self.train_samples)
        self.val_loader = DataLoader(
            ImageSamples(self.val_samples, self.preprocessing.transform), batch_size=args.val_batch_size,
            sampler=ShardSampler(len(self.val_samples), ctx), num_workers=args.workers, collate_fn=collate_samples,
            pin_memory=ctx.device.type == "cuda")

        model = model.to(ctx.device)
        if args.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if args.grad_checkpointing:
            model.set_grad_checkpointing(True)
        self.model = model
        self.ema = ModelEmaV3(model, decay=args.model_ema_decay, use_warmup=args.model_ema_warmup) \
            if args.model_ema else None
        self.optimizer = create_optimizer_v2(model, opt=args.opt, lr=args.lr, weight_decay=args.weight_decay,
                                             momentum=args.momentum)
        self.scheduler, _ = create_scheduler_v2(
            self.optimizer, sched=args.sched, num_epochs=args.epochs, warmup_epochs=args.warmup_epochs,
            warmup_lr=args.warmup_lr, min_lr=args.min_lr, cooldown_epochs=args.cooldown_epochs,
            step_on_epochs=False, updates_per_epoch=len(self.train_loader))
        self.loss_fn, self.mixup = build_loss(args, self.num_classes)
        self.scaler = NativeScaler(device=ctx.device.type) if self.precision is Precision.FP16 else None
        self.trained = DistributedDataParallel(model, device_ids=[ctx.device] if ctx.device.type == "cuda" else None) \
            if ctx.initialized else model
        self.options = StepOptions(self.precision, args.clip_grad, args.clip_mode, args.channels_last,
                                   self.bad_images)
        self.epoch, self.num_updates, self.best = 0, 0, {"top1": float("-inf"), "epoch": -1}
        self.log: list[dict[str, Any]] = []

    def _train_loader(self, samples: Samples) -> DataLoader:
        args, ctx = self.args, self.ctx
        if len(samples) < args.batch_size * ctx.world_size:
            raise ValueError(f"training data {args.train}: {len(samples)} images, fewer than one batch of "
                             f"{args.batch_size} x {ctx.world_size} process(es): lower --batch-size")
        dataset = ImageSamples(samples, build_train_transform(self.augmentation))
        generator = torch.Generator().manual_seed(args.seed)
        sampler = DistributedSampler(dataset, ctx.world_size, ctx.rank, shuffle=True, seed=args.seed) \
            if ctx.initialized else None
        return DataLoader(dataset, batch_size=args.batch_size, shuffle=sampler is None, sampler=sampler,
                          generator=generator, num_workers=args.workers, collate_fn=collate_samples, drop_last=True,
                          pin_memory=ctx.device.type == "cuda", persistent_workers=args.workers > 0)

    # ------------------------------------------------------------------------------------------------ checkpoints

    def state(self, metrics: dict[str, float]) -> dict[str, Any]:
        return dict(
            arch=self.arch,
            model_kwargs=self.model_kwargs,
            num_classes=self.num_classes,
            class_names=self.train_samples.classes,
            data_config=saved_data_config(self.preprocessing),
            state_dict=self.model.state_dict(),
            **({"state_dict_ema": self.ema.module.state_dict()} if self.ema is not None else {}),
            optimizer=self.optimizer.state_dict(),
            **({"scaler": self.scaler.state_dict()} if self.scaler is not None else {}),
            epoch=self.epoch,
            num_updates=self.num_updates,
            best=self.best,
            metrics=metrics,
            args={k: plain(v) for k, v in vars(self.args).items()},
        )

    def resume(self, path: Path) -> None:
        checkpoint = read_checkpoint(path)
        if not is_vssm_checkpoint(checkpoint):
            raise ValueError(f"--resume {path}: not a train_cls.py checkpoint (start from released weights with "
                             "--pretrained instead)")
        found = (checkpoint["arch"], checkpoint["num_classes"], checkpoint["model_kwargs"])
        if found != (self.arch, self.num_classes, self.model_kwargs):
            raise ValueError(f"--resume {path}: the checkpoint is {found[0]} with {found[1]} classes and "
                             f"{found[2]}, this run {self.arch} with {self.num_classes} and {self.model_kwargs}")
        self.model.load_state_dict(checkpoint["state_dict"])
        if self.ema is not None:
            self.ema.module.load_state_dict(checkpoint.get("state_dict_ema", checkpoint["state_dict"]))
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        if self.scaler is not None and "scaler" in checkpoint:
            self.scaler.load_state_dict(checkpoint["scaler"])
        self.epoch, self.num_updates, self.best = checkpoint["epoch"], checkpoint["num_updates"], checkpoint["best"]
        # The schedule follows this run's arguments (--epochs may have grown): set it to where the checkpoint was.
        self.scheduler.step(self.epoch)
        self.scheduler.step_update(self.num_updates)
        log = self.args.output / "log.csv"
        if log.exists():
            self.log = [row for row in csv.DictReader(log.open()) if int(row["epoch"]) <= self.epoch]

    # ------------------------------------------------------------------------------------------------ loop

    def epoch_label(self, epoch: int) -> str:
        """Epochs count from 1 everywhere (progress bars, log lines, messages): 'epoch 3/8'."""
        return f"epoch {epoch}/{self.args.epochs}"

    def _evaluate(self, model: nn.Module, desc: str) -> EvalResult:
        return evaluate(model, self.val_loader, self.ctx, self.precision, self.args.channels_last, self.bad_images,
                        desc=desc, progress=not self.args.no_progress)

    def train(self) -> dict[str, Any]:
        args, ctx = self.args, self.ctx
        metrics: dict[str, float] = {}
        while self.epoch < args.epochs:
            if isinstance(self.train_loader.sampler, DistributedSampler):
                self.train_loader.sampler.set_epoch(self.epoch)
            label = self.epoch_label(self.epoch + 1)
            result, self.num_updates = train_one_epoch(
                self.trained, self.train_loader, self.optimizer, self.loss_fn, ctx, self.num_updates, self.options,
                self.scheduler, self.mixup, self.ema, self.scaler, desc=f"train {label}", progress=not args.no_progress)
            self.epoch += 1
            row: dict[str, Any] = {"epoch": self.epoch, "lr": f"{self.optimizer.param_groups[0]['lr']:.6g}",
                                   "train_loss": f"{result.loss:.5f}", "train_images": result.images,
                                   "train_s": f"{result.seconds:.1f}", "skipped": len(result.skipped)}
            if self.epoch % args.eval_every == 0 or self.epoch == args.epochs:
                metrics = self._evaluate_all()
                row.update({k: f"{v:.4f}" for k, v in metrics.items()})
                if metrics["top1"] > self.best["top1"]:
                    self.best = {"top1": metrics["top1"], "epoch": self.epoch}
            self.scheduler.step(self.epoch, metrics.get("top1"))  # the metric: for --sched plateau
            self.log.append(row)
            if ctx.is_main:
                self._save(metrics)
                print(" ".join([label, *(f"{k} {v}" for k, v in row.items() if k != "epoch")]), flush=True)
        return metrics

    def _evaluate_all(self) -> dict[str, float]:
        metrics = {}
        models = [("", self.model)] + ([("ema_", self.ema.module)] if self.ema is not None else [])
        for prefix, model in models:
            acc = self._evaluate(model, f"val {'ema ' if prefix else ''}{self.epoch_label(self.epoch)}").accuracy
            metrics.update({f"{prefix}top1": acc.top1, f"{prefix}top5": acc.top5, f"{prefix}loss": acc.loss})
        return metrics

    def _save(self, metrics: dict[str, float]) -> None:
        output = self.args.output
        last = save_train_checkpoint(output / "last.pth", **self.state(metrics))
        if self.best["epoch"] == self.epoch:
            shutil.copyfile(last, output / "best.pth")
        columns = list(dict.fromkeys(k for row in self.log for k in row))
        write_csv(output / "log.csv", [{k: row.get(k, "") for k in columns} for row in self.log])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ctx = None
    try:
        ctx = setup_distributed(args.device)
        seed_everything(args.seed + ctx.rank)
        run = Run(args, ctx)
        resume = args.output / "last.pth" if args.resume == "auto" else (Path(args.resume) if args.resume else None)
        if resume is not None and (args.resume != "auto" or resume.exists()):
            run.resume(resume)
            if run.epoch >= args.epochs:
                if ctx.is_main:
                    print(f"{resume}: already trained {run.epoch} epochs (--epochs {args.epochs}); nothing to do, "
                          "no file changed")
                return 0
            if ctx.is_main:
                print(f"resumed from {resume}: {run.epoch_label(run.epoch)} done ({run.num_updates} updates), "
                      f"continuing with {run.epoch_label(run.epoch + 1)}")
        if ctx.is_main:
            args.output.mkdir(parents=True, exist_ok=True)
            (args.output / "args.json").write_text(json.dumps({k: plain(v) for k, v in vars(args).items()}, indent=2))
            print(f"{run.arch}: {sum(p.numel() for p in run.model.parameters()) / 1e6:.3f} M parameters, "
                  f"{run.num_classes} classes, {len(run.train_samples)} training / {len(run.val_samples)} validation "
                  f"images, {ctx.world_size} process(es) on {ctx.device}, {run.precision.value}")
            print(f"augmentation: {run.augmentation}")
            print(f"evaluation preprocessing: {run.preprocessing.text()}")
        final = run.train()
    except (ValueError, FileNotFoundError, FloatingPointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if ctx is not None:
            cleanup_distributed(ctx)
    if ctx.is_main:
        summary = {"model": run.arch, "epochs": run.epoch, "final": final, "best": run.best,
                   "machine": machine_description(ctx.device)}
        (args.output / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        rows = [[k, f"{v:.4f}"] for k, v in final.items()]
        print(f"final evaluation after {run.epoch_label(run.epoch)} ({len(run.val_samples)} images):")
        print(markdown_table(["metric", "value"], rows, right=[False, True]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
