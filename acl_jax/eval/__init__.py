"""Downstream evaluation of a pretrained (or randomly initialized) encoder.

`evaluate(EvalArgs(...)) -> result dict` runs one protocol for one task; `python -m
acl_jax.eval` is its command line. Only the ENCODER of the checkpoint is used, restored with
the objective model its stored config describes (any objective's encoder class).

Tasks: the classification tasks of prepared data (acl_jax.eval.classification: protocols
linear, finetune, hug) and `ludb_segmentation`, per-sample P/QRS/T labelling of raw LUDB
records scored by Dice (acl_jax.eval.segmentation: protocols linear, finetune). Both keep the
test split unread until model selection on train/val is finished, and read it once.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import jax

from acl_jax.eval.args import SEGMENTATION_TASK, EvalArgs, EvalError, load_encoder
from acl_jax.eval.classification import Evaluation, check_compatible
from acl_jax.eval.save import check_save, save_classifier
from acl_jax.eval.segmentation import SegmentationEvaluation
from acl_jax.inference import card as card_lib
from acl_jax.train.checkpoint import CKPT_DIR, CheckpointError, workdir_path


def evaluate(a: EvalArgs, save: str | None = None, command: str = "") -> dict:
    """Selection on train/val, then the single test evaluation. Returns the result dict.

    save: a directory for the trained classifier (acl_jax.eval.save; `command` is the command
    line recorded with it), refused before anything runs where it is not supported."""
    t0 = time.perf_counter()
    if save is not None:
        check_save(a, a.task == SEGMENTATION_TASK)
    run = SegmentationEvaluation(a) if a.task == SEGMENTATION_TASK else Evaluation(a)
    run.select()
    result = run.evaluate_test()
    result["timings"]["total_s"] = time.perf_counter() - t0
    if save is not None and jax.process_index() == 0:  # one process writes
        save_classifier(run, result, save, command or card_lib.eval_command(result))
    return result


def available_steps(workdir: str) -> list[int]:
    """Finished checkpoint steps in WORKDIR/checkpoints (Orbax renames a step dir into place
    only once it is complete, so a step listed here is safe to restore)."""
    directory = workdir_path(workdir) / CKPT_DIR
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.is_dir() and p.name.isdigit())


def follow(
    a: EvalArgs, timeout: float, on_result: Callable[[dict], None], poll: float = 1.0
) -> list[int]:
    """Evaluates the latest checkpoint, then each newer one as it appears, until the run's final
    step (its config's train.steps) is evaluated or `timeout` seconds pass without a new one.
    A checkpoint that vanishes (the trainer's keep=N rotation), is unreadable or holds
    non-finite parameters is skipped with a note. Returns the evaluated steps."""
    if a.workdir is None:
        raise EvalError("--follow needs --workdir")
    done: list[int] = []
    skipped: dict[int, str] = {}
    last_new = time.monotonic()
    while True:  # waits for WORKDIR/checkpoints to appear: available_steps is [] until then
        steps = available_steps(a.workdir)
        seen = done + list(skipped)
        todo = [s for s in steps if s > max(seen)] if seen else steps[-1:]
        finished = False
        for step in todo:
            last_new = time.monotonic()
            try:
                result = evaluate(dataclasses.replace(a, step=step))
            except CheckpointError as e:  # incl. CheckpointNotFound: deleted before we read it
                skipped[step] = str(e)
                print(f"checkpoint {step} skipped: {e}", flush=True)
                continue
            on_result(result)
            done.append(step)
            # The run's last step: no newer checkpoint will come, no need to wait for timeout.
            finished = step >= result["config"]["train"]["steps"]
        if finished:
            break
        if not todo:
            if time.monotonic() - last_new > timeout:
                break
            time.sleep(poll)
    if not done:
        why = f"; skipped: {sorted(skipped)}" if skipped else ""
        raise EvalError(
            f"no checkpoint in {a.workdir}/{CKPT_DIR} could be evaluated within {timeout:g} s "
            f"(--follow-timeout){why}: is training running with this --workdir?"
        )
    return done


def output_path(out: str, step: int | None, following: bool) -> Path:
    """--out FILE.json, or FILE_step<N>.json for each checkpoint when following."""
    path = Path(out)
    return path.with_name(f"{path.stem}_step{step}{path.suffix}") if following else path


__all__ = [
    "SEGMENTATION_TASK",
    "EvalArgs",
    "EvalError",
    "Evaluation",
    "SegmentationEvaluation",
    "available_steps",
    "check_compatible",
    "evaluate",
    "follow",
    "load_encoder",
    "output_path",
]
