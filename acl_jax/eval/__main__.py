"""Evaluates a pretrained (or randomly initialized) encoder on a downstream task.

  python -m acl_jax.eval --workdir DIR --data DIR --task TASK [--protocol linear|finetune|hug]

  --step N | --follow [--follow-timeout S]    which checkpoint(s); default the latest
  --init random [--config configs/X.py]       the same architecture, untrained (the baseline)
  --label-fraction F --seed S                 stratified, seeded subset of the train labels
  --out FILE.json                             also FILE.md and FILE_roc.png (FILE_seg.png)
  --save DIR                                  the trained classifier, for export --classifier
                                              (every classification protocol; acl_jax.eval.save)
  --protocol hug [--hug-pool mean] [--hug-freeze-encoder]   CLEAR-HUG's head (clear checkpoints)
  --task ludb_segmentation --data LUDB_DIR [--record-split 0.6,0.2,0.2]
                                              P/QRS/T Dice on raw LUDB records (linear|finetune)

Prints the Markdown table of each result. A flag mistake exits 2, a failed evaluation 1, each
with one line on stderr that says the fix.
"""

from __future__ import annotations

import dataclasses
import shlex
import sys

from absl import logging

from acl_jax import cli
from acl_jax.config import ConfigError
from acl_jax.eval import EvalArgs, EvalError, evaluate, follow, output_path, report
from acl_jax.eval.tasks import TaskError
from acl_jax.train.checkpoint import CheckpointNotFound


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvalCommand(EvalArgs):
    """EvalArgs plus what only the command line does: follow a run, write the result."""

    follow: bool = cli.arg(
        False, help="Evaluate each new checkpoint as it appears, until the run's final step."
    )
    follow_timeout: float = cli.arg(
        600.0, help="With --follow: stop after this many seconds without a new checkpoint."
    )
    out: str | None = cli.arg(None, help="Result FILE.json (FILE.md and FILE_roc.png beside it).")
    save: str | None = cli.arg(
        None, help="Dir for the trained classifier (any protocol), for export --classifier DIR."
    )


def run(c: EvalCommand, argv: list[str] | None = None) -> None:
    """argv: the command's arguments, recorded with a --save'd classifier."""
    if c.follow and c.step is not None:
        raise cli.UsageError("--follow and --step exclude each other")
    if c.follow and c.save:
        raise cli.UsageError("--save stores one evaluation's classifier: drop --follow")
    logging.set_verbosity(logging.ERROR)  # Orbax warns on every read-only restore
    import jax

    args = EvalArgs(**{f.name: getattr(c, f.name) for f in dataclasses.fields(EvalArgs)})

    def emit(result: dict) -> None:
        if jax.process_index() != 0:  # every process computes the result; one writes it
            return
        print(report.markdown(result), flush=True)
        if c.out:
            paths = report.write(result, output_path(c.out, result["step"], c.follow))
            print(f"wrote {', '.join(str(p) for p in paths.values())}", flush=True)

    if c.follow:
        follow(args, c.follow_timeout, emit)
    else:
        command = shlex.join(["python", "-m", "acl_jax.eval", *(argv or [])])
        emit(evaluate(args, save=c.save, command=command if argv is not None else ""))
        if c.save and jax.process_index() == 0:
            print(f"saved the classifier to {c.save}", flush=True)


ERRORS = (EvalError, TaskError, CheckpointNotFound, ConfigError, FileNotFoundError, ValueError)


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status (acl_jax.cli)."""
    argv = sys.argv[1:] if argv is None else argv
    return cli.run(
        EvalCommand,
        lambda c: run(c, argv),
        prog="python -m acl_jax.eval",
        doc=__doc__,
        argv=argv,
        errors=ERRORS,
    )


if __name__ == "__main__":
    sys.exit(main())
