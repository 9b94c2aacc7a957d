"""`python -m acl_jax.eval --workdir DIR --data DIR --task TASK [--protocol linear|finetune|hug]`

  --step N | --follow [--follow-timeout S]    which checkpoint(s); default the latest
  --init random [--config configs/X.py]       the same architecture, untrained (the baseline)
  --label-fraction F --seed S                 stratified, seeded subset of the train labels
  --out FILE.json                             also FILE.md and FILE_roc.png (FILE_seg.png)
  --protocol hug [--hug-pool mean] [--hug-freeze-encoder]   CLEAR-HUG's head (clear checkpoints)
  --task ludb_segmentation --data LUDB_DIR [--record-split 0.6,0.2,0.2]
                                              P/QRS/T Dice on raw LUDB records (linear|finetune)

Prints the Markdown table of each result. Errors exit non-zero with a message saying the fix.
"""

from __future__ import annotations

import sys

from absl import app, flags, logging

flags.DEFINE_string("workdir", None, "Pretraining workdir (WORKDIR/checkpoints).")
flags.DEFINE_string(
    "data",
    None,
    "Prepared data dir (python -m acl_jax.prepare --out); for --task ludb_segmentation the "
    "folder of raw LUDB records (1.hea, 1.dat, 1.i, ...).",
)
flags.DEFINE_string(
    "task", None, "Task from the data's manifest, TASK_single, or ludb_segmentation."
)
flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
flags.DEFINE_bool(
    "follow", False, "Evaluate each new checkpoint as it appears, until the run's final step."
)
flags.DEFINE_float(
    "follow_timeout", 600.0, "With --follow: stop after this many seconds without a new checkpoint."
)
flags.DEFINE_enum(
    "protocol", "linear", ["linear", "finetune", "hug"], "Evaluation protocol (hug: CLEAR only)."
)
flags.DEFINE_float("label_fraction", 1.0, "Fraction of labelled train records, in (0, 1].")
flags.DEFINE_integer("seed", 0, "Seed of the label subset, head init, fine-tuning, bootstrap.")
flags.DEFINE_string("out", None, "Result FILE.json (FILE.md and FILE_roc.png beside it).")
flags.DEFINE_enum("init", "pretrained", ["pretrained", "random"], "Encoder weights.")
flags.DEFINE_string("config", None, "Config file for --init random without --workdir.")
flags.DEFINE_list("splits", ["train", "val", "test"], "Names of the train,val,test splits.")
flags.DEFINE_integer("batch_size", 64, "Global batch size (rounded up to the device count).")
flags.DEFINE_integer("finetune_steps", 500, "Fine-tuning steps (upper bound).")
flags.DEFINE_float("finetune_lr", 1e-4, "Fine-tuning AdamW learning rate.")
flags.DEFINE_integer("finetune_eval_every", 50, "Validate every K fine-tuning steps.")
flags.DEFINE_integer("finetune_patience", 5, "Stop after this many validations without gain.")
flags.DEFINE_float("head_lr", 1e-3, "AdamW learning rate when only a head trains.")
flags.DEFINE_enum("hug_pool", "attention", ["attention", "mean"], "HUG beat/lead pooling.")
flags.DEFINE_bool("hug_freeze_encoder", False, "HUG: train the head only (encoder frozen).")
flags.DEFINE_list(
    "record_split", ["0.6", "0.2", "0.2"], "ludb_segmentation: train,val,test record fractions."
)
flags.DEFINE_integer("seg_hidden", 64, "ludb_segmentation head hidden width (0: linear head).")
flags.DEFINE_integer("bootstrap", 1000, "Bootstrap resamples for the confidence intervals.")
flags.mark_flags_as_required(["data", "task"])
FLAGS = flags.FLAGS


def _parse(argv: list[str]) -> list[str]:
    """Accepts --label-fraction as well as absl's --label_fraction spelling."""

    def norm(arg: str) -> str:
        if not arg.startswith("--"):
            return arg
        name, eq, value = arg[2:].partition("=")
        return "--" + name.replace("-", "_") + eq + value

    return FLAGS([norm(a) for a in argv])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {argv[1:]}")
    logging.set_verbosity(logging.ERROR)  # Orbax warns on every read-only restore
    import jax

    from acl_jax.config import ConfigError
    from acl_jax.eval import EvalArgs, EvalError, evaluate, follow, output_path, report
    from acl_jax.eval.tasks import TaskError
    from acl_jax.train.checkpoint import CheckpointNotFound

    if FLAGS.follow and FLAGS.step is not None:
        sys.exit("error: --follow and --step exclude each other")
    if len(FLAGS.splits) != 3:
        sys.exit(f"error: --splits={','.join(FLAGS.splits)}: give train,val,test names")
    try:
        record_split = tuple(float(f) for f in FLAGS.record_split)
    except ValueError:
        sys.exit(f"error: --record_split={','.join(FLAGS.record_split)}: give three numbers")
    args = EvalArgs(
        data=FLAGS.data,
        task=FLAGS.task,
        workdir=FLAGS.workdir,
        config=FLAGS.config,
        step=FLAGS.step,
        protocol=FLAGS.protocol,
        init=FLAGS.init,
        label_fraction=FLAGS.label_fraction,
        seed=FLAGS.seed,
        splits=tuple(FLAGS.splits),
        batch_size=FLAGS.batch_size,
        finetune_steps=FLAGS.finetune_steps,
        finetune_lr=FLAGS.finetune_lr,
        finetune_eval_every=FLAGS.finetune_eval_every,
        finetune_patience=FLAGS.finetune_patience,
        head_lr=FLAGS.head_lr,
        hug_pool=FLAGS.hug_pool,
        hug_freeze_encoder=FLAGS.hug_freeze_encoder,
        record_split=record_split,
        seg_hidden=FLAGS.seg_hidden,
        bootstrap=FLAGS.bootstrap,
    )

    def emit(result: dict) -> None:
        if jax.process_index() != 0:  # every process computes the result; one writes it
            return
        print(report.markdown(result), flush=True)
        if FLAGS.out:
            paths = report.write(result, output_path(FLAGS.out, result["step"], FLAGS.follow))
            print(f"wrote {', '.join(str(p) for p in paths.values())}", flush=True)

    try:
        if FLAGS.follow:
            follow(args, FLAGS.follow_timeout, emit)
        else:
            emit(evaluate(args))
    except (
        EvalError,
        TaskError,
        CheckpointNotFound,
        ConfigError,
        FileNotFoundError,
        ValueError,
    ) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    app.run(main, flags_parser=_parse)
