"""PNG pictures of the tools' results (matplotlib, the `plot` extra; no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

try:
    from matplotlib.figure import Figure  # a bare Figure renders with Agg: no pyplot state, no display
except ModuleNotFoundError as error:
    raise ModuleNotFoundError("vssm.analysis.plots draws with matplotlib, which is not installed: "
                              "pip install 'vssm[plot]'") from error

from vssm.analysis.benchmark import Measurement


def save_figure(fig: Figure, title: str, path: Path, rect: tuple[float, float, float, float] | None = None) -> Path:
    """`fig` with its title, laid out and saved as a PNG at `path` (its folder created)."""
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
    return save_figure(fig, title, path)
