"""What one evaluation run is asked to do (`EvalArgs`), its error type and the encoder it loads."""

from __future__ import annotations

import dataclasses

from flax import nnx

from acl_jax.config import Config, load_config
from acl_jax.objectives import build_pretrainer
from acl_jax.train.checkpoint import load_pretrainer

# Dense per-sample P/QRS/T labelling of raw LUDB records (acl_jax.eval.segmentation).
SEGMENTATION_TASK = "ludb_segmentation"
PROTOCOLS = ("linear", "finetune", "hug")


class EvalError(ValueError):
    """Bad inputs (data, checkpoint, task, config); the message names the thing and the fix."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvalArgs:
    data: str
    task: str
    workdir: str | None = None
    config: str | None = None  # config file for --init random without a workdir
    step: int | None = None  # None: latest
    protocol: str = "linear"  # linear | finetune | hug (hug: CLEAR checkpoints only)
    init: str = "pretrained"  # pretrained | random
    label_fraction: float = 1.0
    seed: int = 0
    splits: tuple[str, str, str] = ("train", "val", "test")
    batch_size: int = 64
    finetune_steps: int = 500  # every gradient-trained protocol: at most this many steps
    finetune_lr: float = 1e-4  # when the encoder trains too
    finetune_eval_every: int = 50
    finetune_patience: int = 5
    head_lr: float = 1e-3  # when only a head trains (segmentation linear, hug frozen)
    hug_pool: str = "attention"  # attention | mean
    hug_freeze_encoder: bool = False
    record_split: tuple[float, float, float] = (0.6, 0.2, 0.2)  # ludb_segmentation records
    seg_hidden: int = 64  # hidden width of the per-sample head; 0: linear head
    bootstrap: int = 1000


def check_common(a: EvalArgs) -> None:
    """Checks shared by every task (the rest depends on the data)."""
    if a.protocol not in PROTOCOLS:
        raise EvalError(f"--protocol={a.protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    if a.init not in ("pretrained", "random"):
        raise EvalError(f"--init={a.init!r}: choose pretrained or random")
    if a.hug_pool not in ("attention", "mean"):
        raise EvalError(f"--hug_pool={a.hug_pool!r}: choose attention or mean")
    if a.workdir is None and not (a.init == "random" and a.config):
        raise EvalError("--workdir is required (or --init=random with --config=configs/X.py)")


def load_encoder(a: EvalArgs, data_fs: int | None) -> tuple[nnx.Module, Config, int, int | None]:
    """(encoder, config, fs, step): the checkpoint's encoder, or a fresh one for --init random.

    data_fs: the data's rate, used for --init random without a workdir (None: not known).
    """
    if a.workdir is not None:
        model, cfg, fs, step = load_pretrainer(a.workdir, a.step)
    else:
        if data_fs is None:
            raise EvalError(
                f"--task {a.task} reads raw records without a prepared rate: pass --workdir "
                "(its checkpoint fixes the rate), also for --init random"
            )
        cfg, fs, step = load_config(a.config), int(data_fs), None
        model = None
    if a.init == "random":
        model = build_pretrainer(cfg, fs=fs, bn_axis=None, rngs=nnx.Rngs(a.seed))
    return model.encoder, cfg, fs, step


def args_dict(a: EvalArgs) -> dict:
    """EvalArgs as JSON-ready values (tuples as lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(a).items()}
