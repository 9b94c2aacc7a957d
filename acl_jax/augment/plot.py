"""A PNG of an ECG window and its augmented views, with R-peaks marked and masked cycles shaded.

Uses matplotlib's object API with the Agg canvas (no pyplot, no global backend switch), so it
works headless and from tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from acl_jax.augment import physio
from acl_jax.augment.compose import build_op, make_augment
from acl_jax.augment.view import View
from acl_jax.config import AugmentConfig
from acl_jax.leads import LEAD_INDEX


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[(start, stop)) index runs where the (W,) bool mask is True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def plot_views(
    views: Sequence[View],
    path: str | Path,
    *,
    fs: int,
    titles: Sequence[str] | None = None,
    masks: Sequence[np.ndarray | None] | None = None,
    leads: Sequence[str] = ("I", "II", "V2"),
) -> Path:
    """Writes a grid (one row per view, one column per lead) to `path` (PNG) and returns it.

    views: single-example Views, x (12, W) mV, rpeaks (K,), lead_mask (12,).
    masks: per view an optional (W,) bool of masked samples, shaded grey.
    R-peaks are drawn as red dots on the trace; absent leads are labelled "absent".
    """
    unknown = [n for n in leads if n not in LEAD_INDEX]
    if unknown:
        raise ValueError(f"plot_views: unknown leads {unknown}; use names from {list(LEAD_INDEX)}")
    titles = list(titles) if titles is not None else [f"view {i}" for i in range(len(views))]
    masks = list(masks) if masks is not None else [None] * len(views)
    if not (len(titles) == len(masks) == len(views)):
        raise ValueError(
            f"plot_views: {len(views)} views but {len(titles)} titles and {len(masks)} masks"
        )
    fig = Figure(figsize=(4.0 * len(leads), 1.8 * len(views)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(views), len(leads), squeeze=False, sharex=True)
    for row, (view, title, mask) in enumerate(zip(views, titles, masks)):
        x, rpeaks, lead_mask = (np.asarray(a) for a in view)
        t = np.arange(x.shape[-1]) / fs
        peaks = rpeaks[rpeaks >= 0]
        for col, name in enumerate(leads):
            ax, lead = axes[row, col], LEAD_INDEX[name]
            ax.plot(t, x[lead], lw=0.8, color="k")
            ax.plot(t[peaks], x[lead, peaks], "o", ms=3, color="tab:red")
            if mask is not None:
                for a, b in _runs(np.asarray(mask, bool)):
                    ax.axvspan(a / fs, b / fs, color="0.6", alpha=0.4, lw=0)
            if lead_mask[lead] == 0:
                ax.text(0.5, 0.5, "absent", transform=ax.transAxes, ha="center", color="0.5")
            ax.set_title(f"{title}: {name}" if row == 0 or col == 0 else name, fontsize=8)
            ax.tick_params(labelsize=7)
        axes[row, 0].set_ylabel("mV", fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("s", fontsize=7)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def plot_augmentations(
    key: jax.Array, view: View, cfg: AugmentConfig, fs: int, path: str | Path, **kwargs
) -> Path:
    """Plots `view`, each op of `cfg.ops` applied alone, and the whole chain, to `path`.

    The cycle_mask row shades exactly the masked cycles (same key as the op).
    """
    keys = jax.random.split(key, len(cfg.ops) + 1)
    views, titles, masks = [view], ["original"], [None]
    for name, k in zip(cfg.ops, keys[:-1]):
        views.append(build_op(name, cfg, fs)(k, view))
        titles.append(name)
        masks.append(
            np.asarray(
                physio.cycle_mask_samples(
                    k,
                    view.rpeaks,
                    view.x.shape[-1],
                    prob=cfg.cycle_mask_prob,
                    max_cycles=cfg.cycle_mask_max,
                )
            )
            if name == "cycle_mask"
            else None
        )
    views.append(make_augment(cfg, fs)(keys[-1], view))
    titles.append("chain")
    masks.append(None)
    return plot_views(views, path, fs=fs, titles=titles, masks=masks, **kwargs)
