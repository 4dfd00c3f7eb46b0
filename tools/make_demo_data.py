"""Write a small ImageFolder dataset to try eval_imagenet.py and train_cls.py without ImageNet.

    python tools/make_demo_data.py runs/demo_digits             # 32 px, 80 / 20 % train / val
    python tools/make_demo_data.py runs/demo_digits --size 64 --per-class 100

The images are scikit-learn's handwritten digits (1797 8 x 8 scans of 0-9, shipped with the package), upscaled:
<output>/train/<digit>/*.png and <output>/val/<digit>/*.png, plus train.txt / val.txt list files ('<path> <label>').
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", type=Path, help="folder to write (its train/ and val/ must not exist yet)")
    parser.add_argument("--size", type=int, default=32, help="image side in pixels (default 32)")
    parser.add_argument("--val-fraction", type=float, default=0.2, help="share of each class for val (default 0.2)")
    parser.add_argument("--per-class", type=int, help="keep only this many images per class (default: all ~180)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Imported after parsing: torch and vssm take seconds to import, and --help should answer at once.
    from tqdm import tqdm

    from vssm.analysis.tables import markdown_table
    from vssm.data.demo import SPLITS, write_digits

    counts: Counter[tuple[str, int]] = Counter()
    try:
        for item in tqdm(write_digits(args.output, args.size, args.val_fraction, args.seed, args.per_class),
                         desc="writing", unit="image", file=sys.stderr):
            counts[item.split, item.label] += 1
    except (ValueError, FileExistsError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = [[split, sum(n for (s, _), n in counts.items() if s == split),
             len({label for s, label in counts if s == split}), f"{args.output / split}", f"{args.output / split}.txt"]
            for split in SPLITS]
    print(markdown_table(["split", "images", "classes", "ImageFolder", "list file"], rows,
                         right=[False, True, True, False, False]))
    print(f"{args.size} x {args.size} px RGB PNGs of scikit-learn's digits (seed {args.seed})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
