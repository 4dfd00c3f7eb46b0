"""Evaluate a classifier checkpoint on an ImageNet-style validation set: top-1, top-5, loss, images/s.

    python tools/eval_imagenet.py --model vim_small --checkpoint vim_s_midclstok_80p5acc.pth --data imagenet/val
    python tools/eval_imagenet.py --model vmamba_tiny --checkpoint vssm1_tiny_0230s_ckpt_epoch_264.pth \\
        --data imagenet/val --amp fp16 --ema --json vmamba_tiny.json
    python tools/eval_imagenet.py --checkpoint runs/digits/last.pth --data demo_digits/val   # train_cls.py's
    python tools/eval_imagenet.py --model vim_small --print-preprocessing
    torchrun --nproc_per_node 8 tools/eval_imagenet.py --model ... --checkpoint ... --data ...

--data is an ImageFolder directory (one sub-folder per class; ImageNet synset folders keep ImageNet-1k's label
numbers even for a subset) or a list file of '<path> <label>' lines. Checkpoints: the originals' training files
({'model', 'model_ema', ...} with their pickled configs, read weights-only), timm-style {'state_dict', ...}, bare
state dicts, .safetensors, and train_cls.py's (which name their model, classes and preprocessing). --ema evaluates the
EMA weights instead of the model weights. Preprocessing comes from the model's pretrained_cfg through timm.data
(--img-size, --crop-pct, --crop-mode, --interpolation override it) and is printed as it runs. Default precision is
fp32 (VMamba's own validation ran under fp16 autocast: --amp fp16 reproduces it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import timm
import torch
from torch.utils.data import DataLoader

import vssm  # noqa: F401  (registers the models)
from vssm.analysis.tables import machine_description, markdown_table, write_csv
from vssm.checkpoints import LoadedClassifier, load_classifier, model_kwargs_for_size
from vssm.data import (
    BadImages,
    EvalPreprocessing,
    ImageSamples,
    collate_samples,
    eval_preprocessing,
    find_samples,
    imagenet_class_names,
)
from vssm.engine import (
    Distributed,
    EvalResult,
    Precision,
    RealLabels,
    ShardSampler,
    add_amp_argument,
    cleanup_distributed,
    evaluate,
    setup_distributed,
)
from vssm.zoo import resolve_names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="registered model name (optional for train_cls.py checkpoints)")
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument("--checkpoint", type=Path, help="checkpoint file (any format above)")
    weights.add_argument("--pretrained", action="store_true", help="the model's released weights (downloaded by timm)")
    parser.add_argument("--data", type=Path, help="ImageFolder directory or '<path> <label>' list file")
    parser.add_argument("--data-root", type=Path, help="folder the paths of a list file are relative to "
                        "(default: the list file's folder)")
    parser.add_argument("--ema", action="store_true", help="evaluate the checkpoint's EMA weights")
    parser.add_argument("--img-size", type=int, help="evaluation resolution (square; default: the model's)")
    parser.add_argument("--crop-pct", type=float, help="center-crop fraction (default: the model's)")
    parser.add_argument("--crop-mode", choices=["center", "squash", "border"], help="default: the model's")
    parser.add_argument("--interpolation", choices=["bicubic", "bilinear", "nearest"], help="default: the model's")
    add_amp_argument(parser)
    parser.add_argument("--channels-last", action="store_true", help="model and inputs in channels-last layout")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=4, help="data-loading processes (0: in the main process)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda when available)")
    parser.add_argument("--real-labels", type=Path, help="ImageNet-ReaL real.json: also report ReaL top-1/top-5")
    parser.add_argument("--bad-images", choices=[b.value for b in BadImages], default=BadImages.FAIL.value,
                        help="unreadable images: stop with their path (fail, default) or leave them out (skip)")
    parser.add_argument("--json", type=Path, help="write the results (and the preprocessing) as JSON")
    parser.add_argument("--csv", type=Path, help="write the results row as CSV")
    parser.add_argument("--print-preprocessing", action="store_true",
                        help="print the preprocessing the evaluation would use and exit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.workers < 0:
        parser.error(f"--batch-size >= 1 and --workers >= 0 expected, got {args.batch_size} and {args.workers}")
    if not args.print_preprocessing:
        if args.checkpoint is None and not args.pretrained:
            parser.error("the weights to evaluate are needed: --checkpoint PATH or --pretrained")
        if args.data is None:
            parser.error("--data is needed (an ImageFolder directory or a list file)")
    if args.checkpoint is None and args.model is None:
        parser.error("--model is needed unless --checkpoint is a train_cls.py checkpoint")
    return args


def build_model(args: argparse.Namespace) -> tuple[LoadedClassifier, dict[str, Any]]:
    """The model with its weights, and the data config its preprocessing starts from (our checkpoint's, or the
    model's pretrained_cfg)."""
    if args.checkpoint is not None:
        loaded = load_classifier(args.checkpoint, args.model, args.ema, args.img_size)
        return loaded, loaded.meta["data_config"] if loaded.meta else loaded.model.pretrained_cfg
    (name,) = resolve_names([args.model], allow_timm=True)
    kwargs = {} if args.img_size is None else model_kwargs_for_size(name, args.img_size)
    if args.print_preprocessing:  # the pretrained config is all that is needed: no weights
        model = timm.create_model(name, device="meta", **kwargs)
    else:
        model = timm.create_model(name, pretrained=True, **kwargs)
    return LoadedClassifier(model.eval(), name, "pretrained", None), model.pretrained_cfg


def class_names_for(args: argparse.Namespace, num_classes: int, meta: dict[str, Any] | None) -> list[str] | None:
    """The label order to read the data with: our checkpoint's classes, ImageNet-1k's for synset folders, or None."""
    if meta is not None:
        return meta["class_names"]
    return imagenet_class_names(args.data) if num_classes == 1000 else None


def describe_preprocessing(pre: EvalPreprocessing) -> str:
    config = pre.config
    return (f"preprocessing: {pre.text()}\n"
            f"  input_size {tuple(config['input_size'])}, crop_pct {config['crop_pct']}, crop_mode "
            f"{config['crop_mode']}, interpolation {config['interpolation']}")


def result_row(args: argparse.Namespace, name: str, weights: str, precision: Precision, pre: EvalPreprocessing,
               result: EvalResult) -> dict[str, Any]:
    acc = result.accuracy
    row = {
        "model": name,
        "checkpoint": str(args.checkpoint) if args.checkpoint else "pretrained",
        "weights": weights,
        "images": acc.images,
        "top1": round(acc.top1, 3),
        "top5": round(acc.top5, 3),
        "loss": round(acc.loss, 5),
        "images_per_s": round(result.images_per_second, 1),
        "skipped": len(result.skipped),
        "precision": precision.value,
        "channels_last": args.channels_last,
        "batch_size": args.batch_size,
        "preprocessing": pre.text(),
    }
    if result.real is not None:
        row["real_top1"], row["real_top5"] = (round(v, 3) for v in result.real)
    return row


def run(args: argparse.Namespace, ctx: Distributed) -> int:
    loaded, base_config = build_model(args)
    name, meta = loaded.arch, loaded.meta
    pre = eval_preprocessing(base_config, {"img_size": args.img_size, "crop_pct": args.crop_pct,
                                           "crop_mode": args.crop_mode, "interpolation": args.interpolation})
    if args.print_preprocessing:
        if ctx.is_main:
            print(f"model: {name}\n{describe_preprocessing(pre)}")
        return 0
    precision = Precision.from_flag(args.amp)
    num_classes = loaded.model.num_classes
    samples = find_samples(args.data, args.data_root, class_names_for(args, num_classes, meta))
    if len(samples.classes) > num_classes:
        raise ValueError(f"data {args.data}: {len(samples.classes)} classes, but {name} predicts {num_classes}")
    real = RealLabels(args.real_labels, [p for p, _ in samples.items]) if args.real_labels else None
    dataset = ImageSamples(samples, pre.transform)
    loader = DataLoader(dataset, batch_size=args.batch_size, num_workers=args.workers, collate_fn=collate_samples,
                        sampler=ShardSampler(len(dataset), ctx), pin_memory=ctx.device.type == "cuda")
    model = loaded.model.to(ctx.device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    weights = loaded.weights or "state dict"
    if ctx.is_main:
        print(f"model: {name}, weights: {weights}, {len(samples)} images in {len(samples.classes)} classes, "
              f"{precision.value}, batch {args.batch_size}, {ctx.world_size} process(es) on {ctx.device}")
        print(describe_preprocessing(pre))
    result = evaluate(model, loader, ctx, precision, args.channels_last, BadImages(args.bad_images), real,
                      desc=f"eval {name}", progress=not args.no_progress)
    if not ctx.is_main:
        return 0
    row = result_row(args, name, weights, precision, pre, result)
    shown = {k: v for k, v in row.items() if k != "preprocessing"}  # printed above the table
    print(markdown_table(list(shown), [list(shown.values())],
                         right=[isinstance(v, (int, float)) for v in shown.values()]))
    for image in result.skipped:
        print(f"skipped: {image.path} ({image.reason})")
    if args.csv:
        write_csv(args.csv, [row])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        record = {**shown, "data": str(args.data), "classes": len(samples.classes), "preprocessing": pre.as_dict(),
                  "skipped_images": [vars(s) for s in result.skipped], "machine": machine_description(ctx.device)}
        args.json.write_text(json.dumps(record, indent=2) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ctx = None
    try:
        ctx = setup_distributed(args.device)
        return run(args, ctx)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if ctx is not None:
            cleanup_distributed(ctx)


if __name__ == "__main__":
    raise SystemExit(main())
