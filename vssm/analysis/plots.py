"""PNG pictures of the tools' results (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure  # a bare Figure renders with Agg: no pyplot state, no display
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, NullFormatter

from vssm.analysis.benchmark import Measurement


def _save(fig: Figure, title: str, path: Path, rect: tuple[float, float, float, float] | None = None) -> Path:
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=rect)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def plot_throughput(measurements: Sequence[Measurement], path: str | Path, title: str,
                    baselines: Sequence[str] = ()) -> Path:
    """Images/s against input resolution: one panel per mode, one line per (model, batch); baselines dashed.

    The error bars span the slowest and the fastest timed step.
    """
    path = Path(path)
    modes = sorted({m.mode for m in measurements})
    fig = Figure(figsize=(6.5 * len(modes), 4.5))
    axes = fig.subplots(1, len(modes), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        lines: dict[tuple[str, int], list[Measurement]] = {}
        for m in measurements:
            if m.mode == mode:
                lines.setdefault((m.model, m.batch), []).append(m)
        for (model, batch), points in sorted(lines.items()):
            points.sort(key=lambda m: (m.height, m.width))
            x = [m.height for m in points]
            y = [m.images_per_s for m in points]
            low = [m.images_per_s - m.images_per_s_range[0] for m in points]
            high = [m.images_per_s_range[1] - m.images_per_s for m in points]
            ax.errorbar(x, y, yerr=[low, high], marker="o", capsize=3, label=f"{model} (batch {batch})",
                        linestyle="--" if model in baselines else "-")
        ax.set_xlabel("input resolution (px)")
        ax.set_ylabel("images / s (median)")
        ax.set_yscale("log")
        ax.set_title(mode)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, title, path)


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
    return _save(fig, title, Path(path), rect=(0, 0.04, 1, 1))  # room for the family legend below the panels
