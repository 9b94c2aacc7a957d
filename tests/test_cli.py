"""Every `python -m acl_jax.*` entry point speaks one command-line style (acl_jax.cli): --help
exits 0 and lists each flag with its type and default, a flag mistake is one stderr line and
exit 2, a failure of the work is one line and exit 1."""

import dataclasses
import os
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from acl_jax import cli, compare, download, embed, export, predict, prepare
from acl_jax.eval import __main__ as eval_main
from acl_jax.train import __main__ as train_main
from acl_jax.train import curves

REPO = Path(__file__).resolve().parent.parent

# module, main(argv) -> exit status, its argument dataclass, a valid argv, a misspelled flag
ENTRY_POINTS = [
    (
        "acl_jax.train",
        train_main.main,
        train_main.TrainArgs,
        ["--config", "configs/tiny.py", "--workdir", "W"],
        "--wrokdir",
    ),
    (
        "acl_jax.eval",
        eval_main.main,
        eval_main.EvalCommand,
        ["--data", "D", "--task", "T"],
        "--label-fractoin",
    ),
    (
        "acl_jax.prepare",
        prepare.main,
        prepare.PrepareArgs,
        ["--dataset", "ptbxl", "--src", "S", "--out", "O"],
        "--shard-sise",
    ),
    (
        "acl_jax.download",
        download.main,
        download.DownloadArgs,
        ["ptbxl", "--out", "O"],
        "--retires",
    ),
    ("acl_jax.compare", compare.main, compare.CompareArgs, ["A.json", "B.json"], "--nmu"),
    ("acl_jax.train.curves", curves.main, curves.CurvesArgs, ["W"], "--outt"),
    ("acl_jax.export", export.main, export.ExportArgs, ["--workdir", "W", "--out", "O"], "--stpe"),
    (
        "acl_jax.embed",
        embed.main,
        embed.EmbedArgs,
        ["--model", "M", "--input", "I", "--out", "O"],
        "--modle",
    ),
    (
        "acl_jax.predict",
        predict.main,
        predict.PredictArgs,
        ["--model", "M", "--input", "I", "--out", "O"],
        "--modle",
    ),
]
IDS = [e[0] for e in ENTRY_POINTS]


def call(main, argv, capsys) -> tuple[int, str, list[str]]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err.splitlines()


def flag_help(out: str, name: str) -> str:
    """The help entry of flag or positional `name` in --help, unwrapped."""
    head, options = out.split("\noptions:\n", 1)
    section = options.split("\nconfig fields", 1)[0]
    if not name.startswith("--"):
        section = head.split("\npositional arguments:\n", 1)[1]
    m = re.search(rf"^  {re.escape(name)}(?![-\w]).*?(?=^  \w|^  -|\Z)", section, re.M | re.S)
    assert m, f"{name} not in --help"
    return " ".join(m.group(0).split())


@pytest.mark.parametrize("module,main,spec,argv,typo", ENTRY_POINTS, ids=IDS)
def test_help_exits_0_and_lists_every_flag_with_type_and_default(
    module, main, spec, argv, typo, capsys
):
    rc, out, err = call(main, ["--help"], capsys)
    assert rc == 0 and not err
    assert out.startswith(f"usage: python -m {module}")
    hints = typing.get_type_hints(spec)
    for f in dataclasses.fields(spec):
        if f.metadata["positional"]:
            assert f"({cli.type_name(hints[f.name])}" in flag_help(out, f.name)
            continue
        assert "_" not in cli.flag(f.name)
        required = f.default is dataclasses.MISSING
        where = "required" if required else f"default: {cli.show(f.default)}"
        assert f"({cli.type_name(hints[f.name])}; {where})" in flag_help(out, cli.flag(f.name))


def without(argv: list[str], spec) -> list[str]:
    """`argv` less its last required argument (a flag and its value, or a positional)."""
    last = [f for f in dataclasses.fields(spec) if f.default is dataclasses.MISSING][-1]
    if last.metadata["positional"]:
        return argv[:-1]
    i = argv.index(cli.flag(last.name))
    return argv[:i] + argv[i + 2 :]


@pytest.mark.parametrize("module,main,spec,argv,typo", ENTRY_POINTS, ids=IDS)
def test_flag_mistakes_are_one_line_and_exit_2(module, main, spec, argv, typo, capsys):
    rc, out, err = call(main, [*argv, typo, "1"], capsys)
    assert rc == 2 and len(err) == 1 and not out
    assert err[0].startswith(f"error: unknown flag {typo}") and "(did you mean --" in err[0]
    rc, out, err = call(main, without(argv, spec), capsys)
    assert rc == 2 and len(err) == 1 and not out
    assert err[0].startswith("error: the following arguments are required:"), err


@pytest.mark.parametrize("module,main,spec,argv,typo", ENTRY_POINTS, ids=IDS)
def test_misspelled_flag_in_a_real_process(module, main, spec, argv, typo):
    """The process itself: exit status 2 and exactly one stderr line, no traceback (before:
    train and eval printed a 20-line absl traceback and exited 1)."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *argv, typo, "1"],
        cwd=REPO,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.splitlines() == [proc.stderr.strip()] and typo in proc.stderr
    assert not proc.stdout


def test_train_config_overrides_errors_are_one_line(capsys):
    base = ["--config", "configs/tiny.py", "--workdir", "W"]
    cases = {
        "--config.train.steps": "error: --config.train.steps needs a value",
        "--config.train.stepz=3": "error: unknown config key 'train.stepz'",
        "--config.train.steps=many": "error: --config.train.steps='many': expected int",
        "--config.clear.mask_ratio=2": "error: clear.mask_ratio",  # a section's own check
    }
    for arg, needle in cases.items():
        rc, out, err = call(train_main.main, [*base, arg], capsys)
        assert rc == 2 and len(err) == 1 and err[0].startswith(needle), (arg, err)
    # A value-less override followed by another flag must not swallow that flag as its value.
    rc, _, err = call(train_main.main, [*base[:2], "--config.data.dir", *base[2:]], capsys)
    assert rc == 2 and err[0].startswith("error: --config.data.dir needs a value"), err
    rc, _, err = call(train_main.main, ["--workdir", "W"], capsys)
    assert rc == 2 and err == ["error: the following arguments are required: --config (see --help)"]
    rc, _, err = call(train_main.main, [*base, "--num-processes", "2"], capsys)
    assert rc == 2 and "--coordinator, --num-processes and --process-id go together" in err[0]


def test_train_help_lists_config_fields_from_the_given_file(capsys):
    rc, out, _ = call(train_main.main, ["--help"], capsys)
    assert rc == 0
    rows = {
        line.split()[0]: line.split()[1:3] for line in out.splitlines() if "--config." in line[:12]
    }
    assert rows["--config.train.steps"] == ["int", "1000"]  # the schema's defaults
    assert rows["--config.model.widths"] == ["int,...", "32,64,128,128"]
    assert rows["--config.model.lead_wise"] == ["bool", "true"]
    assert "--config.data.dir" in out and "# output of `python -m acl_jax.prepare`" in out
    argv = ["--config", "configs/tiny.py", "--config.train.steps=70", "--help"]
    rc, out, _ = call(train_main.main, argv, capsys)
    rows = {
        line.split()[0]: line.split()[1:3] for line in out.splitlines() if "--config." in line[:12]
    }
    assert rc == 0 and "values shown: configs/tiny.py" in out
    assert rows["--config.train.steps"] == ["int", "70"]  # the file's values, overrides applied
    assert rows["--config.data.batch_size"] == ["int", "32"]


def test_underscore_spelling_is_accepted_and_values_are_typed():
    kebab, _ = cli.parse(
        eval_main.EvalCommand, ["--data=D", "--task=T", "--label-fraction=0.5"], prog="x"
    )
    snake, _ = cli.parse(
        eval_main.EvalCommand, ["--data=D", "--task=T", "--label_fraction", "0.5"], prog="x"
    )
    assert kebab == snake and kebab.label_fraction == 0.5
    a, _ = cli.parse(
        eval_main.EvalCommand,
        [
            "--data=D",
            "--task=T",
            "--follow",
            "--record-split=0.5,0.25,0.25",
            "--hug-freeze-encoder=false",
        ],
        prog="x",
    )
    assert a.follow is True and a.hug_freeze_encoder is False
    assert a.record_split == (0.5, 0.25, 0.25) and a.splits == ("train", "val", "test")


def test_work_failures_are_one_line_and_exit_1(tmp_path, capsys):
    rc, _, err = call(compare.main, [str(tmp_path / "a.json"), str(tmp_path / "b.json")], capsys)
    assert rc == 1 and len(err) == 1 and err[0].startswith(f"error: {tmp_path / 'a.json'} does not")
    rc, _, err = call(curves.main, [str(tmp_path)], capsys)
    assert rc == 1 and len(err) == 1 and "metrics.jsonl does not exist" in err[0]
    rc, _, err = call(prepare.main, ["--dataset=ptbxl", f"--src={tmp_path}/no", "--out=O"], capsys)
    assert rc == 1 and err == [f"error: --src {tmp_path}/no is not a directory"]
    rc, _, err = call(eval_main.main, ["--data=D", "--task=T", "--follow", "--step=3"], capsys)
    assert rc == 2 and err == ["error: --follow and --step exclude each other (see --help)"]
