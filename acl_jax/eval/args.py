"""What one evaluation run is asked to do (`EvalArgs`), its error type and the encoder it loads."""

from __future__ import annotations

import dataclasses

from flax import nnx

from acl_jax.cli import arg
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
    """One evaluation; also the flags of `python -m acl_jax.eval` (defaults stated only here)."""

    data: str = arg(
        help="Prepared data dir (python -m acl_jax.prepare --out); for --task ludb_segmentation "
        "the folder of raw LUDB records (1.hea, 1.dat, 1.i, ...)."
    )
    task: str = arg(help="Task from the data's manifest, TASK_single, or ludb_segmentation.")
    workdir: str | None = arg(None, help="Pretraining workdir (WORKDIR/checkpoints).")
    config: str | None = arg(None, help="Config file for --init random without --workdir.")
    step: int | None = arg(None, help="Checkpoint step (default: the latest).")
    protocol: str = arg("linear", choices=PROTOCOLS, help="Evaluation protocol (hug: CLEAR only).")
    init: str = arg("pretrained", choices=("pretrained", "random"), help="Encoder weights.")
    label_fraction: float = arg(1.0, help="Fraction of labelled train records, in (0, 1].")
    seed: int = arg(0, help="Seed of the label subset, head init, fine-tuning, bootstrap.")
    splits: tuple[str, str, str] = arg(
        ("train", "val", "test"), help="Names of the train,val,test splits."
    )
    batch_size: int = arg(64, help="Global batch size (rounded up to the device count).")
    finetune_steps: int = arg(
        500, help="Steps of every gradient-trained protocol (upper bound: early stopping)."
    )
    finetune_lr: float = arg(1e-4, help="AdamW learning rate when the encoder trains too.")
    finetune_encoder_lr_scale: float = arg(
        1.0,
        help="Encoder learning rate = --finetune-lr x this; the head keeps --finetune-lr.",
    )
    finetune_head_init: str = arg(
        "random",
        choices=("random", "linear"),
        help="finetune: the head starts random, or as the linear probe on frozen features (LP-FT).",
    )
    finetune_eval_every: int = arg(50, help="Validate every K fine-tuning steps.")
    finetune_patience: int = arg(5, help="Stop after this many validations without gain.")
    head_lr: float = arg(
        1e-3, help="AdamW learning rate when only a head trains (segmentation linear, hug frozen)."
    )
    hug_pool: str = arg("attention", choices=("attention", "mean"), help="HUG beat/lead pooling.")
    hug_freeze_encoder: bool = arg(False, help="HUG: train the head only (encoder frozen).")
    record_split: tuple[float, float, float] = arg(
        (0.6, 0.2, 0.2), help="ludb_segmentation: train,val,test record fractions."
    )
    seg_hidden: int = arg(64, help="ludb_segmentation head hidden width (0: linear head).")
    bootstrap: int = arg(1000, help="Bootstrap resamples for the confidence intervals.")


def check_common(a: EvalArgs) -> None:
    """Checks shared by every task (the rest depends on the data)."""
    if a.protocol not in PROTOCOLS:
        raise EvalError(f"--protocol={a.protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    if a.init not in ("pretrained", "random"):
        raise EvalError(f"--init={a.init!r}: choose pretrained or random")
    if a.hug_pool not in ("attention", "mean"):
        raise EvalError(f"--hug-pool={a.hug_pool!r}: choose attention or mean")
    if not a.finetune_encoder_lr_scale > 0:
        raise EvalError(
            f"--finetune-encoder-lr-scale={a.finetune_encoder_lr_scale} must be > 0 (to keep "
            "the encoder fixed use --protocol linear or --hug-freeze-encoder)"
        )
    frozen = a.protocol == "linear" or (a.protocol == "hug" and a.hug_freeze_encoder)
    if frozen and a.finetune_encoder_lr_scale != 1.0:
        raise EvalError(
            f"--finetune-encoder-lr-scale={a.finetune_encoder_lr_scale}: the encoder does not "
            f"train under --protocol {a.protocol}{' --hug-freeze-encoder' * (a.protocol == 'hug')}"
        )
    if a.finetune_head_init not in ("random", "linear"):
        raise EvalError(f"--finetune-head-init={a.finetune_head_init!r}: choose random or linear")
    if a.finetune_head_init == "linear" and a.protocol != "finetune":
        raise EvalError(
            f"--finetune-head-init=linear starts a fine-tuned linear head from the probe: it "
            f"needs --protocol finetune, not {a.protocol}"
        )
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
