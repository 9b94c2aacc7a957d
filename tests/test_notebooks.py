"""Every notebook in notebooks/ runs top to bottom on the bundled sample (few steps, via the
notebooks' ACL_NB_* parameters) in a real Jupyter kernel, and shows what it promises. The
quickstart runs from a pip-installed wheel outside the checkout (tests/test_wheel.py)."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def execute(path: Path, work: Path, monkeypatch, **params: str) -> nbformat.NotebookNode:
    # The kernel inherits this process's environment: the parameters cells read ACL_NB_*.
    monkeypatch.setenv("ACL_NB_WORK", str(work))
    monkeypatch.setenv("JAX_NUM_CPU_DEVICES", "1")
    for k, v in params.items():
        monkeypatch.setenv(k, v)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(work)}}
    ).execute()
    return nb


def outputs(nb, kind: str) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if kind(o)]


def text_of(nb) -> str:
    return "\n".join(
        o.get("text", "") + o.get("data", {}).get("text/plain", "")
        for o in outputs(nb, lambda o: o.output_type in ("stream", "execute_result"))
    )


def images(nb) -> int:
    return len(outputs(nb, lambda o: "image/png" in o.get("data", {})))


def test_notebooks_are_thin_and_parameterized():
    assert {p.name for p in NOTEBOOKS} == {"quickstart.ipynb", "explore_workdir.ipynb"}
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert "mark_as_parsed()" in code[0].source  # Grain needs parsed absl flags
        assert any("parameters" in c.metadata.get("tags", []) for c in code)
        assert all(len(c.source.splitlines()) <= 30 for c in code), path  # logic lives in acl_jax
        assert not any(c.get("outputs") for c in code), f"{path}: clear outputs before committing"


@pytest.mark.slow
def test_explore_workdir_runs_on_a_fresh_tiny_run(tmp_path, monkeypatch):
    nb = execute(
        REPO / "notebooks" / "explore_workdir.ipynb", tmp_path, monkeypatch, ACL_NB_STEPS="2"
    )
    text = text_of(nb)
    assert "acl_ecg at step 2" in text
    assert "'regions': (32, 4," in text  # (B, R, D) with the 4 default regions
    assert "15 records; neighbours sharing a superclass:" in text
    assert images(nb) == 2  # region norms, region similarity
