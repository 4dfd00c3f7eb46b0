"""PNG pictures of the tools' results (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure  # a bare Figure renders with Agg: no pyplot state, no display

from vssm.analysis.benchmark import Measurement


def _save(fig: Figure, title: str, path: Path) -> Path:
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
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


def plot_zoo(names: Sequence[str], params_m: Sequence[float], gmacs: Sequence[float],
             images_per_s: Sequence[float | None], path: str | Path, title: str) -> Path:
    """Three bar panels, one bar per model: parameters (M), GMACs, CPU images/s."""
    path = Path(path)
    fig = Figure(figsize=(15, 0.45 * len(names) + 1.8))
    axes = fig.subplots(1, 3, sharey=True)
    order = list(range(len(names)))[::-1]
    labels = [names[i] for i in order]
    panels = (("parameters (M)", params_m), ("GMACs per image (papers' 'GFLOPs')", gmacs),
              ("images / s (median)", [v or 0.0 for v in images_per_s]))
    for ax, (label, values) in zip(axes, panels):
        shown = [values[i] for i in order]
        bars = ax.barh(labels, shown, color="tab:blue")
        ax.bar_label(bars, labels=[f"{v:.3g}" if v else "-" for v in shown], fontsize=8, padding=2)
        ax.set_xlabel(label)
        ax.grid(True, axis="x", alpha=0.3)
        ax.margins(x=0.2)
    return _save(fig, title, path)
