"""acl_jax outside the checkout: a wheel built from this repo and installed (not editable) into a
fresh venv runs the bundled model on ECG files, finds configs by name, and runs the quickstart
notebook, all from a directory that is not the checkout.

The venv gets acl_jax only from the wheel. Its third-party dependencies (jax, flax, ...) are
borrowed from the test venv through one .pth line instead of being downloaded again: a full
resolve costs about 3 minutes here and checks pyproject's dependency list no further than
launch/setup.sh already does for every run of this suite.
"""

import csv
import os
import shutil
import site
import subprocess
import sys
import venv
from pathlib import Path

import nbformat
import numpy as np
import pytest

from acl_jax.data import ptbxl
from acl_jax.eval.metrics import macro_metrics

REPO = Path(__file__).resolve().parent.parent
SAMPLE_RECORDS = REPO / "data" / "sample" / "ptbxl" / "records100"
CINC = REPO / "tests" / "fixtures" / "cinc"
BUNDLED = "acl_ecg_ptbxl100"
SUPERCLASSES = ["CD", "HYP", "MI", "NORM", "STTC"]

pytestmark = pytest.mark.slow


def tracked_tree(dest: Path) -> Path:
    """The checkout's files as git sees them (no build/, .venv, runs): what a fresh clone has."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\0")
    for rel in filter(None, listed):
        if (REPO / rel).is_file():  # a file deleted but not yet committed is skipped
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest / rel)
    return dest


@pytest.fixture(scope="module")
def wheel_python(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wheel")
    src = tracked_tree(root / "src")
    # No build isolation: the test extra pins setuptools>=77, so no download is needed.
    pip = [sys.executable, "-m", "pip"]
    build = [*pip, "wheel", str(src), "--no-deps", "--no-build-isolation", "-q", "-w", str(root)]
    subprocess.run(build, check=True, capture_output=True)
    (wheel,) = root.glob("acl_jax-*.whl")
    venv.create(root / "venv", with_pip=False)
    python = root / "venv" / "bin" / "python"
    install = [*pip, "--python", str(python), "install", "-q", "--no-deps", str(wheel)]
    subprocess.run(install, check=True, capture_output=True)
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # Appended after the venv's own site-packages; .pth files inside it (the test venv's
    # editable-install hook) are not processed, so the checkout cannot stand in for the wheel.
    Path(purelib, "borrowed_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return python


def run_outside(python: Path, cwd: Path, *args: str, **env_vars: str):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(JAX_NUM_CPU_DEVICES="1", **env_vars)
    return subprocess.run(
        [str(python), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_the_package_comes_from_the_wheel(wheel_python, tmp_path):
    code = "import acl_jax, acl_jax.resources as r; print(acl_jax.__file__, r.sample_dir())"
    out = run_outside(wheel_python, tmp_path, "-c", code)
    assert out.returncode == 0, out.stderr
    module, sample = out.stdout.split()
    venv_root = wheel_python.parent.parent
    assert Path(module).is_relative_to(venv_root) and Path(sample).is_relative_to(venv_root)
    assert not Path(module).is_relative_to(REPO)


def test_bundled_model_predicts_on_files_outside_the_checkout(wheel_python, tmp_path):
    """All 189 PTB-XL sample records (100 Hz WFDB) and the CinC fixtures (500 Hz .mat, resampled
    as prepare does). Most sample records are in the classifier's training folds, so the AUROC
    guards the package (a broken export scores about 0.5); the card holds the figures."""
    records = tmp_path / "records"
    shutil.copytree(SAMPLE_RECORDS, records / "ptbxl")
    (records / "cinc").mkdir()
    for f in CINC.glob("*.*"):
        if f.suffix in (".hea", ".mat"):
            shutil.copy(f, records / "cinc" / f.name)
    argv = ["-m", "acl_jax.predict", "--model", BUNDLED, "--input", "records", "--out", "p.csv"]
    out = run_outside(wheel_python, tmp_path, *argv)
    assert out.returncode == 0, out.stderr
    with open(tmp_path / "p.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["record", *SUPERCLASSES]
    probs = {r[0]: [float(x) for x in r[1:]] for r in rows[1:]}
    sample = {r.path.split("/")[-1]: r for r in ptbxl.list_records(SAMPLE_RECORDS.parent)}
    assert len(probs) == len(rows) - 1 == len(sample) + len(list(CINC.glob("*.mat")))
    assert np.all((np.array(list(probs.values())) > 0) & (np.array(list(probs.values())) < 1))
    y = np.array(
        [[c in r.labels["superdiagnostic"] for c in SUPERCLASSES] for r in sample.values()]
    )
    s = np.array([probs[k] for k in sample])
    assert macro_metrics(y, s, SUPERCLASSES)["macro_auroc"] > 0.8


def test_configs_are_found_by_name_outside_the_checkout(wheel_python, tmp_path):
    out = run_outside(
        wheel_python, tmp_path, "-m", "acl_jax.train", "--help", "--config", "acl_ecg_ptbxl"
    )
    assert out.returncode == 0, out.stderr
    assert "--config.acl_ecg.w_inter" in out.stdout and "0.5" in out.stdout
    out = run_outside(wheel_python, tmp_path, "-m", "acl_jax.train", "--help", "--config", "nope")
    assert out.returncode == 2
    assert "acl_ecg_ptbxl" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_quickstart_notebook_runs_outside_the_checkout(wheel_python, tmp_path):
    shutil.copy(REPO / "notebooks" / "quickstart.ipynb", tmp_path)
    driver = (
        "import nbformat, sys\n"
        "from nbclient import NotebookClient\n"
        "nb = nbformat.read('quickstart.ipynb', as_version=4)\n"
        "NotebookClient(nb, timeout=600, kernel_name='python3').execute()\n"
        "nbformat.write(nb, 'executed.ipynb')\n"
    )
    # The kernel inherits the driver's environment: the parameters cell reads ACL_NB_*.
    out = run_outside(
        wheel_python, tmp_path, "-c", driver, ACL_NB_WORK=str(tmp_path / "work"), ACL_NB_STEPS="4"
    )
    assert out.returncode == 0, out.stderr[-3000:]
    nb = nbformat.read(tmp_path / "executed.ipynb", as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    text = "\n".join(
        o.get("text", "") + o.get("data", {}).get("text/plain", "")
        for o in outputs
        if o.output_type in ("stream", "execute_result")
    )
    assert "'train': 159" in text  # the sample, found inside the installed package
    assert "### superdiagnostic: linear (step 4" in text  # the probe's Markdown report
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 4
    assert (tmp_path / "work" / "workdir" / "checkpoints" / "4").is_dir()
