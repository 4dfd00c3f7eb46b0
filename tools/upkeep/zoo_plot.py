"""The zoo report's picture: parameters, GMACs and CPU throughput of every variant, one colour per family."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure  # a bare Figure renders with Agg: no pyplot state, no display
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, NullFormatter

from vssm.analysis.plots import save_figure


def zoo_figure(names: Sequence[str], families: Sequence[str], params_m: Sequence[float], gmacs: Sequence[float],
               images_per_s: Sequence[float | None]) -> Figure:
    """Three bar panels, one bar per model and one colour per family: parameters (M), GMACs, CPU images/s.

    The value axes are logarithmic: the released variants span 7 to 740 M parameters and 1.8 to 512 GMACs
    (reports/zoo.csv), and on linear axes the largest models flatten every other bar. A model that was not timed has
    no bar in the speed panel, only "-".
    """
    colours = {family: f"C{i % 10}" for i, family in enumerate(dict.fromkeys(families))}
    fig = Figure(figsize=(15, 0.45 * len(names) + 2.2))
    axes = fig.subplots(1, 3, sharey=True)
    order = list(range(len(names)))[::-1]
    labels = [names[i] for i in order]
    panels = (("parameters (M)", params_m), ("GMACs per image (papers' 'GFLOPs')", gmacs),
              ("CPU images / s (median)", images_per_s))
    for ax, (label, values) in zip(axes, panels):
        shown = [values[i] for i in order]
        bars = ax.barh(labels, [v if v else float("nan") for v in shown], color=[colours[families[i]] for i in order])
        ax.bar_label(bars, labels=[f"{v:.3g}" if v else "" for v in shown], fontsize=8, padding=2)
        for y, value in enumerate(shown):
            if not value:
                ax.annotate("-", (0.01, y), xycoords=("axes fraction", "data"), va="center", fontsize=8)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(label + ", log scale")
        ax.grid(True, axis="x", which="both", alpha=0.3)
        ax.margins(x=0.15)
    fig.legend(handles=[Patch(color=colour, label=family) for family, colour in colours.items()],
               loc="lower center", ncol=len(colours), fontsize=9, frameon=False)
    return fig


def plot_zoo(names: Sequence[str], families: Sequence[str], params_m: Sequence[float], gmacs: Sequence[float],
             images_per_s: Sequence[float | None], path: str | Path, title: str) -> Path:
    """`zoo_figure` saved as a PNG at `path`."""
    fig = zoo_figure(names, families, params_m, gmacs, images_per_s)
    return save_figure(fig, title, Path(path), rect=(0, 0.04, 1, 1))  # room for the family legend below the panels
