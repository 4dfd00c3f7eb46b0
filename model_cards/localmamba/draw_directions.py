"""Draw LocalMamba's searched scan directions: the lists per variant and, with `scans.plot`, the routes per stage.

    python model_cards/localmamba/draw_directions.py [--output runs/localmamba_directions]
    python model_cards/localmamba/draw_directions.py --update-repo      # redraw the card's committed pictures

* `searched_<variant>.png`: one row per layer (block), one column per choice of the search space; the chosen four
  are filled and labelled with their parameter slot k; stages are separated.
* `routes_<H>x<W>_<directions>.png` (`scans.plot`): every direction a stage's blocks use, on the stage's token grid
  at 224 px (LocalVim: its one 14 x 14 grid), in the canonical order, with the original's `v` reverse. Pictures of
  equal (grid, directions) are drawn once and shared.

The markdown printed on stdout lists, per stage, the directions its layers use and the picture of their routes.
PNGs are stored with a 64-colour palette (a tenth of matplotlib's RGBA size).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image
from tqdm import tqdm

from vssm import scans
from vssm.models import _localmamba_directions as tables

OUTPUT = Path("runs") / "localmamba_directions"
# (variant, file stem, table, stages as (first layer, number of layers, grid side at 224 px))
VARIANTS = (
    ("LocalVim-T / -S", "localvim", tables.LOCAL_VIM_TINY, ((0, 20, 14),)),
    ("LocalVMamba-T", "localvmamba_t", tables.LOCAL_VSSM_TINY, ((0, 2, 56), (2, 2, 28), (4, 9, 14), (13, 2, 7))),
    ("LocalVMamba-S", "localvmamba_s", tables.LOCAL_VSSM_SMALL, ((0, 2, 56), (2, 2, 28), (4, 27, 14), (31, 2, 7))),
)


def stage_directions(table: tables.Directions, first: int, count: int) -> tuple[str, ...]:
    used = {name for layer in table[first : first + count] for name in layer}
    return tuple(name for name in tables.CHOICES if name in used)


def _palette(path: Path) -> Path:
    Image.open(path).convert("RGB").quantize(colors=64).save(path, optimize=True)
    return path


def draw_routes(directions: tuple[str, ...], side: int, path: Path) -> Path:
    order = scans.Windowed(directions, v_reverse=scans.VReverse.OFFICIAL)
    scans.plot(order, side, side, path, columns=4)
    return _palette(path)


def draw_table(variant: str, table: tables.Directions, stages: tuple, path: Path) -> Path:
    """Layers x choices, the chosen cells filled and labelled with their slot."""
    rows, columns = len(table), len(tables.CHOICES)
    figure = Figure(layout="constrained", figsize=(0.55 * columns + 1.2, 0.22 * rows + 1.0))
    ax = figure.subplots()
    for i, layer in enumerate(table):
        for k, name in enumerate(layer):
            j = tables.CHOICES.index(name)
            ax.add_patch(Rectangle((j, i), 1, 1, color="#31688e"))
            ax.text(j + 0.5, i + 0.5, str(k), ha="center", va="center", fontsize=6, color="white")
    for first, count, side in stages:
        ax.axhline(first, color="black", linewidth=1.2)
        ax.text(columns + 0.1, first + count / 2, f"{side}x{side}", va="center", fontsize=7)
    ax.set_xlim(0, columns)
    ax.set_ylim(rows, 0)
    ax.set_xticks([j + 0.5 for j in range(columns)], tables.CHOICES, rotation=45, fontsize=7)
    ax.set_yticks([i + 0.5 for i in range(rows)], [str(i) for i in range(rows)], fontsize=6)
    ax.set_xticks(range(columns + 1), minor=True)
    ax.set_yticks(range(rows + 1), minor=True)
    ax.grid(which="minor", color="0.85", linewidth=0.5)
    ax.tick_params(which="minor", length=0)
    ax.set_ylabel("layer" if "Vim" in variant else "block")
    ax.set_title(f"{variant}: searched directions (slot k)", fontsize=8)
    figure.savefig(path, dpi=120)
    return _palette(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--output", type=Path, default=OUTPUT, help=f"folder for the PNGs (default {OUTPUT}/)")
    where.add_argument("--update-repo", action="store_true", help="redraw the committed pictures next to this file")
    args = parser.parse_args(argv)
    if args.update_repo:
        args.output = Path(__file__).parent
    args.output.mkdir(parents=True, exist_ok=True)
    pictures: dict[tuple[int, tuple[str, ...]], Path] = {}
    jobs = [(side, stage_directions(table, first, count)) for _, _, table, stages in VARIANTS
            for first, count, side in stages]  # fmt: skip
    for side, directions in tqdm(dict.fromkeys(jobs), desc="route pictures"):
        name = f"routes_{side}x{side}_{'-'.join(directions)}.png"
        pictures[side, directions] = draw_routes(directions, side, args.output / name)
    for variant, stem, table, stages in VARIANTS:
        draw_table(variant, table, stages, args.output / f"searched_{stem}.png")
        print(f"\n{variant}: ![searched](localmamba/searched_{stem}.png)\n")
        print("| stage | layers | grid at 224 px | directions used | routes |\n|---|---|---|---|---|")
        for s, (first, count, side) in enumerate(stages):
            directions = stage_directions(table, first, count)
            picture = pictures[side, directions].name
            print(f"| {s} | {first}-{first + count - 1} | {side}x{side} | {', '.join(directions)} | "
                  f"[{picture}](localmamba/{picture}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
