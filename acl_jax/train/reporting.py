"""Training metrics: JSONL, TensorBoard event files and a progress line, on process 0 only.

Metrics arrive one step late (the loop hands over step s's device arrays after step s+1 has
been dispatched), so fetching them never stalls the accelerator.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import jax
import numpy as np
from etils import epath


def _fmt_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class _JsonLines:
    """metrics.jsonl: appended locally; object stores (gs://) cannot append, so there the
    whole file is rewritten on each flush (a few hundred kB for a long run).

    Opened with `keep_through` = the step the run resumes from: rows of later steps (written
    before a kill, and about to be recomputed) are dropped, as is a line cut short by the
    kill, so that the file holds each step exactly once.
    """

    def __init__(self, path: epath.Path, keep_through: int):
        self._path, self._remote = path, "://" in str(path)
        lines = path.read_text().splitlines(keepends=True) if path.exists() else []
        kept = [line for line in lines if _step_of(line) is not None]
        kept = [line for line in kept if _step_of(line) <= keep_through]
        if kept != lines:
            self._rewrite(kept)
        self._lines = kept if self._remote else []
        self._file = None if self._remote else open(path, "a")  # noqa: SIM115

    def _rewrite(self, lines: list[str]) -> None:
        if self._remote:
            self._path.write_text("".join(lines))
            return
        # Atomic: a kill during the rewrite leaves the old file or the new one, never half.
        tmp = Path(f"{self._path}.tmp")
        tmp.write_text("".join(lines))
        os.replace(tmp, self._path)

    def write(self, line: str) -> None:
        if self._remote:
            self._lines.append(line)
        else:
            self._file.write(line)

    def flush(self, sync: bool = False) -> None:
        if self._remote:
            self._path.write_text("".join(self._lines))
        else:
            self._file.flush()
            if sync:  # survives a machine crash too, not only a killed process
                os.fsync(self._file.fileno())

    def close(self) -> None:
        self.flush()
        if self._file is not None:
            self._file.close()


def _step_of(line: str) -> int | None:
    """The step of a metrics.jsonl line; None for a line cut short (by a kill)."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    return row.get("step") if isinstance(row, dict) and line.endswith("\n") else None


class Reporter:
    """Writes WORKDIR/metrics.jsonl and WORKDIR/tb/, prints a line every `every` steps."""

    def __init__(
        self, workdir: str | Path, *, total_steps: int, batch_size: int, every: int, start_step: int
    ):
        self.enabled = jax.process_index() == 0
        self.total_steps, self.batch_size, self.every = total_steps, batch_size, every
        self._t0, self._s0 = time.perf_counter(), start_step
        self._tb = None
        if self.enabled:
            workdir = epath.Path(workdir)
            workdir.mkdir(parents=True, exist_ok=True)
            self._jsonl = _JsonLines(workdir / "metrics.jsonl", keep_through=start_step)
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(str(workdir / "tb"))

    def restart_clock(self, step: int) -> None:
        """Excludes compilation from the throughput figures."""
        self._t0, self._s0 = time.perf_counter(), step

    def log(self, step: int, metrics: dict, lr: float) -> dict[str, float]:
        """Records step `step`'s metrics (device arrays or numbers); returns them as floats."""
        values = {k: float(np.asarray(v)) for k, v in jax.device_get(metrics).items()}
        values["lr"] = float(lr)
        if not self.enabled:
            return values
        elapsed = time.perf_counter() - self._t0
        done = step - self._s0
        steps_per_s = done / elapsed if elapsed > 0 and done > 0 else float("nan")
        values["steps_per_s"] = steps_per_s
        values["samples_per_s"] = steps_per_s * self.batch_size
        self._jsonl.write(json.dumps({"step": step, "time": time.time(), **values}) + "\n")
        for k, v in values.items():
            if math.isfinite(v):  # steps/s is undefined on the first step
                self._tb.add_scalar(f"train/{k}", v, step)
        if step % self.every == 0 or step == self.total_steps:
            self._jsonl.flush()
            eta = (self.total_steps - step) / steps_per_s if steps_per_s > 0 else float("nan")
            print(
                f"step {step}/{self.total_steps}  loss {values['loss']:.4f}  "
                f"lr {lr:.2e}  {steps_per_s:.2f} steps/s  "
                f"{values['samples_per_s']:.0f} samples/s  ETA {_fmt_duration(eta)}",
                flush=True,
            )
        return values

    def flush(self) -> None:
        """Called before each checkpoint is saved: the file then holds every step up to it,
        so a run resumed from that checkpoint neither loses nor repeats a row."""
        if self.enabled:
            self._jsonl.flush(sync=True)

    def close(self) -> None:
        if self.enabled:
            self._jsonl.close()
            self._tb.close()
