"""Soak test of exact resumption: SIGKILL the trainer at 20 random moments, resume each time,
and compare with an uninterrupted run.

  python bench/soak_resume.py [--data data/prepared/sample] [--kills 20] [--seed 0]

Both runs use configs/tiny.py with a small model, a checkpoint every 3 steps (asynchronous,
as by default) and a metrics row every step. The kill moments are drawn from a seeded RNG over
the phases a kill can hit: startup (a random delay after launch), just after the restore,
mid-run (a random delay after a random step's metrics line) and just after a checkpoint step
(while its asynchronous write is in flight). After each kill, before resuming:
  - the checkpoint the run will resume from holds, array for array, the bits the reference
    run's checkpoint of that step holds (model and optimizer);
  - metrics.jsonl holds steps 1..m each once (m >= that checkpoint), values equal to the
    reference's (wall-clock fields aside).
A kill counts as identical when both hold. At the end the final parameters and optimizer state
must be bit-identical and metrics.jsonl must hold every step once with the reference's
values. Prints `k/20 identical` and writes bench/results/soak_resume.json.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# The checkpoints are read back here on the trainer's (emulated) device count.
os.environ.update(JAX_PLATFORMS="cpu", JAX_NUM_CPU_DEVICES="2")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import orbax.checkpoint as ocp  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TIMING = {"time", "steps_per_s", "samples_per_s"}  # wall-clock fields: differ run to run
STEPS, CKPT_EVERY = 30, 3


def trainer_args(data: Path, workdir: Path) -> list[str]:
    return [
        sys.executable, "-m", "acl_jax.train", "--config", str(REPO / "configs" / "tiny.py"),
        "--workdir", str(workdir), f"--config.data.dir={data}", "--config.data.batch_size=16",
        "--config.model.widths=8,16", "--config.model.blocks=1,1",
        f"--config.train.steps={STEPS}", f"--config.train.ckpt_every={CKPT_EVERY}",
        "--config.train.log_every=1", "--config.train.keep=1000",
    ]  # fmt: skip


class Trainer:
    """A trainer process whose output lines are collected by a thread (never blocks)."""

    def __init__(self, args: list[str], env: dict):
        self.proc = subprocess.Popen(
            args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: queue.Queue = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, predicate, timeout: float = 600) -> str | None:
        """The first new line satisfying `predicate`; None if the process ended first."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                return None
            self.log.append(line)
            if predicate(line):
                return line
        raise TimeoutError("the trainer printed nothing expected")

    def kill(self) -> bool:
        """SIGKILL; True if the process was still running."""
        alive = self.proc.poll() is None
        if alive:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        return alive


def checkpoints(workdir: Path) -> list[int]:
    d = workdir / "checkpoints"
    return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.is_dir() else []


def arrays(workdir: Path, step: int) -> list[np.ndarray]:
    out = []
    with ocp.StandardCheckpointer() as reader:
        for item in ("model", "optimizer"):
            tree = reader.restore(workdir / "checkpoints" / str(step) / item)
            out += [np.asarray(x) for x in jax.tree.leaves(tree)]
    return out


def same_bits(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(
        x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
        for x, y in zip(a, b)
    )


def metric_rows(workdir: Path) -> list[dict]:
    path = workdir / "metrics.jsonl"
    rows = []
    for line in path.read_text().splitlines(keepends=True) if path.exists() else []:
        if line.endswith("\n"):  # a line cut short by the kill is dropped on resume
            rows.append(json.loads(line))
    return rows


def metrics_match(rows: list[dict], ref: list[dict], through: int) -> bool:
    """Steps 1..m each once (m >= through), each row equal to the reference's."""
    steps = [r["step"] for r in rows]
    if steps != list(range(1, len(steps) + 1)) or len(steps) < through:
        return False
    strip = lambda r: {k: v for k, v in r.items() if k not in TIMING}  # noqa: E731
    return all(strip(r) == strip(ref[r["step"] - 1]) for r in rows)


def prepare_sample(out: Path) -> Path:
    from acl_jax.prepare import PrepareArgs, run

    run(
        PrepareArgs(
            dataset="ptbxl",
            src=str(REPO / "data" / "sample" / "ptbxl"),
            out=str(out),
            splits="train=1-4,val=5,test=6",
            workers=1,
        )
    )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="", help="prepared data (default: the bundled sample)")
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "soak_resume.json"))
    a = p.parse_args()
    rng = random.Random(a.seed)
    t_start = time.time()
    with tempfile.TemporaryDirectory(prefix="soak_resume_") as tmp:
        tmp = Path(tmp)
        data = Path(a.data) if a.data else prepare_sample(tmp / "prepared")
        # A persistent compilation cache keeps restarts short, so kills land in real work too.
        env = {
            **os.environ,
            "JAX_PLATFORMS": "cpu",
            "JAX_NUM_CPU_DEVICES": "2",
            "JAX_COMPILATION_CACHE_DIR": str(tmp / "jax_cache"),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
            "PYTHONPATH": str(REPO),
        }
        t0 = time.time()
        ref_dir, soak_dir = tmp / "reference", tmp / "soak"
        ref = Trainer(trainer_args(data, ref_dir), env)
        ref.wait_for(lambda line: False)
        assert ref.proc.wait() == 0, "".join(ref.log[-20:])
        ref_seconds = time.time() - t0
        ref_rows = metric_rows(ref_dir)
        print(f"reference: {STEPS} steps in {ref_seconds:.1f} s", flush=True)

        kills = []
        while len(kills) < a.kills:
            start = (checkpoints(soak_dir) or [0])[-1]
            left = STEPS - start
            phase = rng.choice(["startup", "restore", "mid-run", "checkpoint"])
            if left <= 2:
                phase = rng.choice(["startup", "restore"])
            run = Trainer(trainer_args(data, soak_dir), env)
            if phase == "startup":
                time.sleep(rng.uniform(0.0, 4.0))
                target = "launch + delay"
            elif phase == "restore":
                run.wait_for(lambda line: line.startswith(("resumed from", "acl_ecg:")))
                time.sleep(rng.uniform(0.0, 0.3))
                target = "restore"
            else:
                if phase == "mid-run":
                    k = rng.randint(start + 1, min(start + 6, STEPS - 1))
                else:
                    up = min(start + 6, STEPS - 1)
                    choices = [s for s in range(start + 1, up + 1) if s % CKPT_EVERY == 0]
                    k = rng.choice(choices or [start + 1])
                run.wait_for(lambda line, k=k: line.startswith(f"step {k}/"))
                time.sleep(rng.uniform(0.0, 0.15))
                target = f"step {k}"
            was_running = run.kill()
            if not was_running:
                print("  the run finished before the kill; kills done:", len(kills), flush=True)
                break
            resume_from = (checkpoints(soak_dir) or [0])[-1]
            ckpt_ok = resume_from == 0 or same_bits(
                arrays(soak_dir, resume_from), arrays(ref_dir, resume_from)
            )
            rows_ok = metrics_match(metric_rows(soak_dir), ref_rows, resume_from)
            kills.append(
                {
                    "phase": phase,
                    "at": target,
                    "restored_before": start,
                    "resumes_from": resume_from,
                    "checkpoint_identical": ckpt_ok,
                    "metrics_ok": rows_ok,
                }
            )
            print(
                f"kill {len(kills):2d} ({phase:10s} {target:14s}): resumes from "
                f"{resume_from:2d}, checkpoint identical {ckpt_ok}, metrics ok {rows_ok}",
                flush=True,
            )
        final = Trainer(trainer_args(data, soak_dir), env)
        final.wait_for(lambda line: False)
        final_rc = final.proc.wait()
        params_same = final_rc == 0 and same_bits(arrays(soak_dir, STEPS), arrays(ref_dir, STEPS))
        soak_rows = metric_rows(soak_dir)
        metrics_same = len(soak_rows) == STEPS and metrics_match(soak_rows, ref_rows, STEPS)
    identical = sum(k["checkpoint_identical"] and k["metrics_ok"] for k in kills)
    result = {
        "kills": len(kills),
        "identical_kills": identical,
        "final_params_identical": params_same,
        "final_metrics_identical": metrics_same,
        "steps": STEPS,
        "ckpt_every": CKPT_EVERY,
        "seed": a.seed,
        "reference_seconds": round(ref_seconds, 1),
        "total_seconds": round(time.time() - t_start, 1),
        "per_kill": kills,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=1) + "\n")
    print(
        f"{identical}/{len(kills)} identical; final parameters and optimizer state "
        f"bit-identical: {params_same}; metrics.jsonl each step once with the reference's "
        f"values: {metrics_same}  ({result['total_seconds']} s) -> {a.out}"
    )
    sys.exit(0 if identical == len(kills) == a.kills and params_same and metrics_same else 1)


if __name__ == "__main__":
    main()
