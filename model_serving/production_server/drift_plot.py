"""The drift report's figure: training vs live shares per bin of the most drifted features, as one PNG.

Drawn from the report's own bins (no raw data needed), with matplotlib's Agg backend as the development
server's plots are, so the figure says exactly what the table says.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from model_serving.production_server.drift import THRESHOLDS_TEXT, Report

_COLOURS = {"training": "#4c72b0", "live": "#dd8452"}


def drift_png(report: Report, *, count: int = 4) -> bytes:
    """PNG bytes: a panel per drifted feature (at most ``count``), or one that says why there is none."""
    shown = report.most_drifted(count)
    columns = max(1, min(2, len(shown)))
    rows = max(1, -(-len(shown) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(6 * columns, 3.4 * rows), squeeze=False)
    for ax in axes.flat[len(shown):]:
        ax.set_axis_off()
    if not shown:
        axes[0][0].text(0.5, 0.5, report.headline, ha="center", va="center", wrap=True, fontsize=10)
    for ax, feature in zip(axes.flat, shown, strict=False):
        positions = np.arange(len(feature.bins))
        width = 0.4
        ax.bar(positions - width / 2, [b.training for b in feature.bins], width, label="training",
               color=_COLOURS["training"])
        ax.bar(positions + width / 2, [b.live for b in feature.bins], width, label="live requests",
               color=_COLOURS["live"])
        ax.set_xticks(positions, [b.label for b in feature.bins], rotation=40, ha="right", fontsize=7)
        ax.set_ylabel("share")
        ax.set_title(f"{feature.name}: PSI {feature.psi:.2f} ({feature.level})", fontsize=10)
        ax.legend(fontsize=8)
    fig.suptitle(f"Drift of the most shifted features ({THRESHOLDS_TEXT})", fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()
