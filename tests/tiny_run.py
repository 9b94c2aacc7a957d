"""What the trainer, checkpoint and eval tests share: the tiny config, a trainer process, a
free port."""

import os
import socket
import subprocess
import sys
from pathlib import Path

from acl_jax.config import load_config
from acl_jax.train.loop import replace

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "configs" / "tiny.py"


def tiny(data_dir, *, optim=None, log_every=5, async_checkpoint=False, **train):
    """configs/tiny.py shrunk to seconds a run: (8, 16) widths, batch 16, window 200 at 100 Hz.

    Warmup is min(10, steps - 1): the config rule wants it below train.steps, and it is what the
    schedule clamped it to before that rule existed, so older expected values still hold.
    """
    steps = train.get("steps", 60)
    return replace(
        load_config(TINY),
        data={"dir": str(data_dir), "batch_size": 16, "window": 200},
        model={"widths": (8, 16), "blocks": (1, 1), "proj_hidden": 32, "proj_dim": 16},
        optim={"warmup_steps": min(10, steps - 1), **(optim or {})},
        train={"log_every": log_every, "async_checkpoint": async_checkpoint, **train},
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_process(*args, env=None, **kw) -> subprocess.Popen:
    """`python -m acl_jax.train ARGS` on 2 emulated devices, stdout and stderr merged, as text."""
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": "2", **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "acl_jax.train", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kw,
    )
