"""Operator-facing robustness of the trainer: nothing non-finite is ever checkpointed, settings
that make no sense are refused with one line, metrics.jsonl holds each step once across kills,
SIGTERM at any moment exits 0, a dead peer ends the other processes promptly."""

import json
import re
import signal
import time
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from tiny_run import free_port, tiny
from tiny_run import train_process as cli

from acl_jax.config import ConfigError, from_dict, load_config, to_dict
from acl_jax.config_cli import apply_overrides
from acl_jax.train.loop import NonFiniteLoss, replace, train
from acl_jax.train.reporting import Reporter

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "configs" / "tiny.py"


def stored_arrays(workdir: Path, step: int) -> list[np.ndarray]:
    """Every array of checkpoint `step`'s model and optimizer items, read back by Orbax."""
    out = []
    with ocp.StandardCheckpointer() as reader:
        for item in ("model", "optimizer"):
            tree = reader.restore(workdir / "checkpoints" / str(step) / item)
            out += [np.asarray(x) for x in jax.tree.leaves(tree)]
    return out


def test_no_checkpoint_holds_non_finite_values(prepared_sample, tmp_path):
    """lr 1e10, a checkpoint every step: the run stops, every checkpoint on disk is finite and
    the message names the newest one (the issue found inf parameters in steps 3-5)."""
    cfg = tiny(
        prepared_sample,
        optim={"lr": 1e10},  # with the default clipping (1.0): the command
        steps=30,
        ckpt_every=1,
        keep=1000,
    )
    with pytest.raises(NonFiniteLoss) as err:
        train(cfg, tmp_path)
    steps = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
    assert steps, "the first steps were finite and checkpointed"
    for s in steps:
        arrays = [a for a in stored_arrays(tmp_path, s) if np.issubdtype(a.dtype, np.floating)]
        bad = sum(int((~np.isfinite(a)).sum()) for a in arrays)
        assert bad == 0, f"checkpoint {s} holds {bad} non-finite values"
    assert f"checkpoints/{steps[-1]}, is finite" in str(err.value), str(err.value)
    assert len(str(err.value).splitlines()) == 1


@pytest.mark.parametrize(
    "key,value,needle",
    [
        ("train.keep", "0", "train.keep=0 is out of range: it must be an integer >= 1"),
        ("train.ckpt_every", "0", "train.ckpt_every=0 is out of range"),
        ("train.log_every", "0", "train.log_every=0 is out of range"),
        ("train.steps", "0", "train.steps=0 is out of range"),
        ("train.steps", "-5", "train.steps=-5 is out of range"),
        ("train.steps_per_call", "0", "train.steps_per_call=0 is out of range"),
        # tiny.py logs every 10 steps and checkpoints every 20: 4 divides only the latter.
        ("train.steps_per_call", "4", "train.steps_per_call=4 must divide train.log_every=10"),
        ("optim.lr", "-1", r"optim.lr=-1.0 is out of range: it must be > 0 and finite"),
        ("optim.lr", "nan", r"optim.lr=nan is out of range"),
        ("optim.momentum", "1", r"optim.momentum=1.0 is out of range: it must be in \[0, 1\)"),
        ("optim.name", "sgd", "optim.name='sgd' is out of range"),
        ("data.window", "0", "data.window=0 is out of range"),
        ("data.batch_size", "-16", "data.batch_size=-16 is out of range"),
        ("data.num_workers", "-1", "data.num_workers=-1 is out of range"),
        ("augment.cycle_mask_prob", "1.5", r"augment.cycle_mask_prob=1.5 .* in \[0, 1\]"),
        ("augment.amplitude_max", "0.1", "augment.amplitude_max=0.1 .* >= augment.amplitude_min"),
        ("model.blocks", "1,0", r"model.blocks=\(1, 0\) is out of range: it must be all >= 1"),
        ("model.dtype", "float16", "model.dtype='float16' is out of range"),
        ("seed", "-1", "seed=-1 is out of range"),
    ],
)
def test_settings_that_make_no_sense_are_refused(key, value, needle):
    with pytest.raises(ConfigError, match=needle) as err:
        apply_overrides(load_config(TINY), {key: value})
    assert len(str(err.value).splitlines()) == 1 and f"--config.{key}" in str(err.value)


def test_warmup_must_end_before_the_last_step():
    cfg = load_config(TINY)  # warmup 10
    with pytest.raises(ConfigError, match=r"optim.warmup_steps=10 must be < train.steps=10"):
        apply_overrides(cfg, {"train.steps": "10"})
    # Overrides are applied together: the order of the keys does not matter.
    ok = apply_overrides(cfg, {"train.steps": "5", "optim.warmup_steps": "2"})
    assert (ok.train.steps, ok.optim.warmup_steps) == (5, 2)
    assert apply_overrides(cfg, {"train.steps": "1", "optim.warmup_steps": "0"}).train.steps == 1
    # A checkpoint written before the rule still loads (eval); training it is refused.
    stored = to_dict(cfg)
    stored["train"]["steps"] = 4
    old = from_dict(stored)
    assert old.optim.warmup_steps == 10
    with pytest.raises(ConfigError, match="optim.warmup_steps=10 must be < train.steps=4"):
        train(old, "unused")


def test_window_and_batch_are_checked_against_the_data(prepared_sample, tmp_path):
    with pytest.raises(
        ValueError, match=r"data.window=5000 samples .* longest of \d+ read is 1000"
    ):
        train(replace(tiny(prepared_sample, steps=4), data={"window": 5000}), tmp_path)
    n = json.loads((prepared_sample / "manifest.json").read_text())["splits"]["train"]
    n = n["num_records"]
    with pytest.raises(ValueError, match=rf"data.batch_size=512 is larger than the {n} records"):
        train(replace(tiny(prepared_sample, steps=4), data={"batch_size": 512}), tmp_path)
    assert not (tmp_path / "checkpoints").exists()


def test_cli_refuses_a_bad_setting_in_one_line(prepared_sample, tmp_path):
    data = f"--config.data.dir={prepared_sample}"  # the old code crashed in the loop
    proc = cli(
        "--config", str(TINY), "--workdir", str(tmp_path), data, "--config.train.ckpt_every=0"
    )
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 2, out  # a config the schema refuses is a usage error (acl_jax.cli)
    assert "Traceback" not in out and "ZeroDivisionError" not in out
    assert out.strip().splitlines() == [
        "error: train.ckpt_every=0 is out of range: it must be an integer >= 1 "
        "(--config.train.ckpt_every) (see --help)"
    ]


def test_metrics_file_is_truncated_to_the_restored_step(tmp_path):
    """Rows past the checkpoint a run resumes from, and a line cut short by a kill, are
    dropped when the file is reopened; the rewrite goes through a temporary file."""
    path = tmp_path / "metrics.jsonl"
    rows = "".join(json.dumps({"step": s, "loss": 1.0 / s}) + "\n" for s in range(1, 11))
    path.write_text(rows + '{"step": 11, "lo')
    reporter = Reporter(tmp_path, total_steps=20, batch_size=4, every=5, start_step=6)
    reporter.log(7, {"loss": np.float32(0.5)}, lr=1e-3)
    reporter.flush()
    steps = [json.loads(line)["step"] for line in path.read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6, 7]
    reporter.close()
    assert not (tmp_path / "metrics.jsonl.tmp").exists()


def wait_for_sigterm_handler(pid: int, timeout: float = 120) -> None:
    """Until the process catches SIGTERM (bit 15 of SigCgt in /proc/PID/status)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = Path(f"/proc/{pid}/status").read_text()
        caught = int(next(x for x in status.splitlines() if x.startswith("SigCgt:")).split()[1], 16)
        if caught & (1 << (signal.SIGTERM - 1)):
            return
        time.sleep(0.01)
    raise AssertionError("the trainer never installed a SIGTERM handler")


def test_sigterm_during_startup_exits_0_without_saving(prepared_sample, tmp_path):
    """SIGTERM as soon as the handler exists (before JAX is even imported): exit 0, nothing
    saved (there is nothing new), no traceback. The handler used to be installed only once
    the loop started, so this SIGTERM was taken then and a step was saved."""
    proc = cli(
        "--config", str(TINY), "--workdir", str(tmp_path), f"--config.data.dir={prepared_sample}"
    )
    wait_for_sigterm_handler(proc.pid)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0, out
    assert "SIGTERM during startup: nothing new to save" in out
    assert not (tmp_path / "checkpoints").exists()


def test_sigterm_right_after_restore_exits_0(prepared_sample, tmp_path):
    common = [
        "--config", str(TINY), "--workdir", str(tmp_path), f"--config.data.dir={prepared_sample}",
        "--config.data.batch_size=16", "--config.model.widths=8,16", "--config.model.blocks=1,1",
        "--config.train.async_checkpoint=false",
    ]  # fmt: skip
    first = cli(*common, "--config.train.steps=2", "--config.optim.warmup_steps=1")
    assert first.wait(timeout=300) == 0
    # Resuming the finished run (the same config) restores, then has nothing to do.
    again = cli(*common, "--config.train.steps=2", "--config.optim.warmup_steps=1")
    for line in again.stdout:
        if line.startswith("resumed from"):
            again.send_signal(signal.SIGTERM)
            break
    out = again.communicate(timeout=120)[0]
    assert again.returncode == 0, out
    assert "Traceback" not in out


@pytest.mark.slow
def test_a_dead_peer_ends_the_survivor_promptly(prepared_sample, tmp_path):
    """2 processes; process 1 is SIGKILLed mid-run: process 0 ends within the heartbeat
    timeout (10 s) naming task 1, instead of waiting ~100 s in a collective."""
    args = [
        "--config", str(TINY), "--workdir", str(tmp_path), f"--config.data.dir={prepared_sample}",
        "--config.data.batch_size=16", "--config.model.widths=8,16", "--config.model.blocks=1,1",
        "--config.train.steps=100000", "--config.train.ckpt_every=100000",
        "--config.train.log_every=1", f"--coordinator=127.0.0.1:{free_port()}",
        "--num-processes=2",
    ]  # fmt: skip
    procs = [cli(*args, f"--process-id={i}") for i in range(2)]
    try:
        for line in procs[0].stdout:
            if line.startswith("step 3/"):
                break
        procs[1].kill()
        killed_at = time.time()
        out = procs[0].communicate(timeout=120)[0]
        elapsed = time.time() - killed_at
    finally:
        for p in procs:
            p.kill()
            p.communicate()
    assert procs[0].returncode != 0, out
    assert elapsed < 45, f"the survivor took {elapsed:.0f} s to stop"
    assert re.search(r"unhealthy \(stopped sending heartbeats\):\s*1\b", out), out[-3000:]
