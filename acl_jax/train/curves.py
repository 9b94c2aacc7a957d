"""Loss curves of a pretraining run from WORKDIR/metrics.jsonl.

  python -m acl_jax.train.curves WORKDIR [--out WORKDIR/loss.png]

Plots every `loss*` metric against the step (raw and a moving average) and, on a second
axis, end-to-end samples/s, so a glance shows whether the run learned and how fast it ran.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from acl_jax import cli


def read_metrics(workdir: str | Path) -> list[dict]:
    path = Path(workdir) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: is {workdir} a training workdir?")
    rows = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        rows[row["step"]] = row  # a resumed run re-logs nothing twice, but keep the last
    return [rows[s] for s in sorted(rows)]


def _smooth(y: np.ndarray, n: int) -> np.ndarray:
    if len(y) < n:
        return y
    return np.convolve(y, np.ones(n) / n, mode="valid")


def plot_losses(workdir: str | Path, out: str | Path | None = None) -> Path:
    """Writes the loss-curve PNG (default WORKDIR/loss.png) and returns its path."""
    rows = read_metrics(workdir)
    steps = np.array([r["step"] for r in rows])
    keys = sorted(k for k in rows[-1] if k.startswith("loss"))
    fig = Figure(figsize=(9, 4.5), dpi=110)
    FigureCanvasAgg(fig)
    ax, ax_rate = fig.subplots(1, 2, width_ratios=(3, 1))
    window = max(1, len(rows) // 50)
    for k in keys:
        y = np.array([r.get(k, np.nan) for r in rows], float)
        (line,) = ax.plot(steps, y, alpha=0.25, lw=0.8)
        ax.plot(steps[window - 1 :], _smooth(y, window), color=line.get_color(), lw=1.6, label=k)
    ax.set(xlabel="step", ylabel="loss", title=f"pretraining losses ({Path(workdir).name})")
    ax.legend(fontsize=8)
    rate = np.array([r.get("samples_per_s", np.nan) for r in rows], float)
    ax_rate.plot(steps, rate, lw=0.8)
    ax_rate.set(xlabel="step", ylabel="samples/s", title="throughput")
    fig.tight_layout()
    out = Path(out) if out else Path(workdir) / "loss.png"
    fig.savefig(out)
    return out


@dataclasses.dataclass(frozen=True, kw_only=True)
class CurvesArgs:
    workdir: str = cli.arg(positional=True, help="Training workdir (holds metrics.jsonl).")
    out: str | None = cli.arg(None, help="PNG to write (default: WORKDIR/loss.png).")


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status (acl_jax.cli)."""
    return cli.run(
        CurvesArgs,
        lambda a: print(plot_losses(a.workdir, a.out)),
        prog="python -m acl_jax.train.curves",
        doc=__doc__,
        argv=argv,
        errors=(FileNotFoundError,),
    )


if __name__ == "__main__":
    sys.exit(main())
