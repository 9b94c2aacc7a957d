"""Test-wide setup: 8 emulated CPU devices (must happen before JAX initializes its backend)."""

import os

os.environ.setdefault("JAX_NUM_CPU_DEVICES", "8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

from absl import flags  # noqa: E402

# Grain's mp_prefetch reads absl flags; pytest never parses them.
flags.FLAGS.mark_as_parsed()

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SAMPLE_PTBXL = REPO / "data" / "sample" / "ptbxl"


@pytest.fixture(scope="session")
def prepared_sample(tmp_path_factory) -> Path:
    """The bundled PTB-XL sample prepared once per session (train folds 1-4, val 5, test 6)."""
    from acl_jax.prepare import PrepareArgs, run

    out = tmp_path_factory.mktemp("prepared") / "sample"
    run(
        PrepareArgs(
            dataset="ptbxl",
            src=str(SAMPLE_PTBXL),
            out=str(out),
            splits="train=1-4,val=5,test=6",
            workers=1,
        )
    )
    return out
