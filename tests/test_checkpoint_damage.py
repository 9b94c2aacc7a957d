"""Damaged, vanished and non-finite checkpoints on real Orbax checkpoints of a tiny run: resume
and eval fall back to the newest intact step with one warning line, an explicitly requested
damaged step is a one-line error, `follow` skips what it cannot evaluate, eval refuses NaN/inf."""

import json
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import nnx
from tiny_run import tiny

from acl_jax.data import pipeline
from acl_jax.eval import EvalArgs, follow
from acl_jax.train.checkpoint import Checkpointer, CheckpointError, load_pretrainer
from acl_jax.train.loop import build_state, train
from acl_jax.train.step import make_mesh

REPO = Path(__file__).resolve().parent.parent
NOISE = ("Traceback", "Event loop is closed")


@pytest.fixture(scope="module")
def run(prepared_sample, tmp_path_factory):
    """One tiny uninterrupted run with checkpoints 2, 4, 6 (never modified: tests copy it)."""
    workdir = tmp_path_factory.mktemp("ckpt") / "run"
    train(tiny(prepared_sample, steps=6, ckpt_every=2, keep=3), workdir)
    assert sorted(int(p.name) for p in (workdir / "checkpoints").iterdir()) == [2, 4, 6]
    return workdir


def params(model) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(nnx.state(model, nnx.Param))]


def copy(run, tmp_path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "copy"))


def damage(workdir: Path, step: int, pattern: str, how: str) -> Path:
    """Deletes or halves the largest file matching `pattern` in checkpoint `step`."""
    path = max((workdir / "checkpoints" / str(step)).glob(pattern), key=lambda p: p.stat().st_size)
    if how == "delete":
        path.unlink()
    else:
        with path.open("r+b") as f:
            f.truncate(path.stat().st_size // 2)
    return path


# The files of each item (Orbax merges the per-process OCDBT stores into model/d/ at commit).
MODEL_FILES = {
    "model array data": "model/d/*",
    "model metadata": "model/_METADATA",
    "model array metadata": "model/array_metadatas/*",
    "model manifest": "model/manifest.ocdbt",
    "meta": "meta/metadata",
}
TRAIN_FILES = {
    "model array data": "model/d/*",
    "model metadata": "model/_METADATA",
    "optimizer array data": "optimizer/d/*",
    "optimizer metadata": "optimizer/_METADATA",
    "data iterator": "data_iter/process_0-of-1.json",
    "meta": "meta/metadata",
}
HOW = ("delete", "truncate")


@pytest.mark.parametrize(
    ("what", "how"),
    # Orbax treats array_metadatas as optional: deleting them leaves the step readable.
    [(w, h) for w in MODEL_FILES for h in HOW if (w, h) != ("model array metadata", "delete")],
)
def test_eval_falls_back_to_the_newest_intact_step(run, tmp_path, capfd, what, how):
    wd = copy(run, tmp_path)
    damage(wd, 6, MODEL_FILES[what], how)
    model, _, _, step = load_pretrainer(wd)
    assert step == 4
    for a, b in zip(params(model), params(load_pretrainer(run, 4)[0]), strict=True):
        np.testing.assert_array_equal(a, b)
    err = capfd.readouterr().err
    item = what.split()[0]
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and f"checkpoint 6 is unreadable ({item}: " in warnings[0], err
    # Asked for by number: no silent substitute, one line naming it and the others.
    with pytest.raises(CheckpointError, match=r"checkpoint 6 .* unreadable .*available: \[2, 4\]"):
        load_pretrainer(wd, 6)
    assert not any(n in capfd.readouterr().err for n in NOISE)


def _restore_like_train(cfg, workdir: Path):
    """Builds what `train` builds and restores the latest step into it, as train does."""
    fs = int(pipeline.read_manifest(cfg.data.dir)["fs"])
    mesh = make_mesh()
    with jax.set_mesh(mesh):
        model, optimizer, _, data_iter = build_state(cfg, mesh, fs)
        ckpt = Checkpointer(workdir, keep=cfg.train.keep, use_async=False)
        try:
            latest = ckpt.latest_step()
            assert ckpt.stored_config(latest)["config"]["seed"] == cfg.seed  # train checks it
            step = ckpt.restore(latest, model, optimizer, data_iter)
            return step, model, ckpt.latest_step()
        finally:
            ckpt.close()


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("what", list(TRAIN_FILES))
def test_resume_falls_back_and_sets_the_damaged_step_aside(
    prepared_sample, run, tmp_path, capfd, what, how
):
    wd = copy(run, tmp_path)
    damage(wd, 6, TRAIN_FILES[what], how)
    step, model, latest = _restore_like_train(
        tiny(prepared_sample, steps=6, ckpt_every=2, keep=3), wd
    )
    assert step == 4 and latest == 4
    for a, b in zip(params(model), params(load_pretrainer(run, 4)[0]), strict=True):
        np.testing.assert_array_equal(a, b)
    # Kept for inspection, out of the way of the step the run will save again.
    assert (wd / "checkpoints_damaged" / "6").is_dir() and not (wd / "checkpoints" / "6").exists()
    err = capfd.readouterr().err
    item = {"data": "data_iter"}.get(what.split()[0], what.split()[0])
    assert f"checkpoint 6 is unreadable ({item}: " in err, err
    assert not any(n in err for n in NOISE), err


def test_resume_past_a_damaged_step_equals_an_uninterrupted_run(
    prepared_sample, run, tmp_path, capsys
):
    """Resume from 4 after 6 broke, train 5 and 6 again, save 6 again: bit-identical to the run
    that never broke."""
    wd = copy(run, tmp_path)
    damage(wd, 6, "model/d/*", "truncate")
    summary = train(tiny(prepared_sample, steps=6, ckpt_every=2, keep=3), wd)
    assert summary["step"] == 6
    assert f"resumed from {wd.absolute()}/checkpoints/4" in capsys.readouterr().out
    resumed, _, _, step = load_pretrainer(wd)
    assert step == 6
    for a, b in zip(params(resumed), params(load_pretrainer(run)[0]), strict=True):
        np.testing.assert_array_equal(a, b)


def test_no_intact_step_is_one_clear_error(prepared_sample, run, tmp_path):
    wd = copy(run, tmp_path)
    for step in (2, 4, 6):
        damage(wd, step, "meta/metadata", "delete")
    with pytest.raises(CheckpointError, match=r"no checkpoint in .* restores \(step 6, item meta"):
        load_pretrainer(wd)
    with pytest.raises(CheckpointError, match=r"no checkpoint in .* (restores|readable meta)"):
        _restore_like_train(tiny(prepared_sample, steps=6, ckpt_every=2, keep=3), wd)


def save_non_finite(workdir: Path, src: int, dst: int) -> int:
    """Writes checkpoint `dst` (meta + model, what eval reads) from `src` with one NaN or inf
    value in every encoder parameter array. Returns the number of arrays made non-finite."""
    model, _, _, _ = load_pretrainer(workdir, src)
    bad = jax.tree.map(
        lambda x: x.at[(0,) * x.ndim].set(jnp.inf), nnx.state(model.encoder, nnx.Param)
    )
    nnx.update(model.encoder, bad)
    meta = json.loads((workdir / "checkpoints" / str(src) / "meta" / "metadata").read_text())
    with ocp.CheckpointManager((workdir / "checkpoints").absolute()) as manager:
        manager.save(
            dst,
            args=ocp.args.Composite(
                model=ocp.args.StandardSave(nnx.state(model)), meta=ocp.args.JsonSave(meta)
            ),
        )
        manager.wait_until_finished()
    return len(jax.tree.leaves(bad))


def test_eval_refuses_non_finite_parameters(run, tmp_path):
    wd = copy(run, tmp_path)
    n = save_non_finite(wd, 6, 8)
    with pytest.raises(
        CheckpointError,
        match=rf"checkpoint 8 .*non-finite .*\({n} values in {n} of \d+ arrays.*--step "
        r"\(available: \[2, 4, 6\]\)",
    ):
        load_pretrainer(wd)
    assert load_pretrainer(wd, 6)[3] == 6


def test_follow_skips_vanished_unreadable_and_non_finite_steps(
    prepared_sample, run, tmp_path, capfd
):
    """While follow evaluates step 2, "training" writes 4 (being deleted by keep=N rotation: its
    model item already gone), 5 (NaN/inf parameters) and 6: follow skips 4 and 5 with a note,
    evaluates 6 (the run's last step) and stops."""
    wd = copy(run, tmp_path)
    later = tmp_path / "later"
    later.mkdir()
    for step in (4, 6):
        (wd / "checkpoints" / str(step)).rename(later / str(step))
    save_non_finite(wd, 2, 5)
    (wd / "checkpoints" / "5").rename(later / "5")
    shutil.rmtree(later / "4" / "model")
    notes = []

    def on_result(result):
        notes.append(result["step"])
        if result["step"] == 2:
            for step in (4, 5, 6):
                (later / str(step)).rename(wd / "checkpoints" / str(step))

    a = EvalArgs(data=str(prepared_sample), task="superdiagnostic", workdir=str(wd), bootstrap=50)
    assert follow(a, timeout=30, on_result=on_result, poll=0.1) == [2, 6] == notes
    out, err = capfd.readouterr()
    assert "checkpoint 4 skipped: checkpoint 4 in" in out and "(model: " in out
    assert "checkpoint 5 skipped: checkpoint 5 in" in out and "non-finite" in out
    assert not any(n in out + err for n in NOISE), err
