"""Test-wide setup: 8 emulated CPU devices (must happen before JAX initializes its backend)."""

import os

os.environ.setdefault("JAX_NUM_CPU_DEVICES", "8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The suite compiles hundreds of tiny programs whose run time is negligible, so LLVM's
# optimization passes are most of its CPU time: without them the whole suite took 11 minutes
# instead of 17 on 2 cores (session 21). XLA's own HLO passes (fusion, sharding) still run and
# every program computes the same function; the equality tests (8 devices == 1, resumed ==
# uninterrupted) compare runs made under the same flags. ACL_TEST_XLA_OPT=1 keeps XLA's default
# backend optimization. Inherited by every subprocess the tests start (trainer CLIs) and by the
# xdist workers, whose own conftest import then finds the flag already set.
_xla_flags = os.environ.get("XLA_FLAGS", "")
if os.environ.get("ACL_TEST_XLA_OPT", "0") != "1" and "xla_backend_optimization" not in _xla_flags:
    os.environ["XLA_FLAGS"] = " ".join(
        [
            _xla_flags,
            "--xla_backend_optimization_level=0",
            "--xla_llvm_disable_expensive_passes=true",
        ]
    ).strip()
# One persistent XLA compilation cache per test session, shared by both xdist workers (they
# inherit the controller's environment) and every subprocess they start (trainer CLIs,
# multi-process runs): many tests compile the same tiny steps again (a resumed run, a second
# process, the same config in another module), and a cached executable is the same program, so
# results are unchanged. It starts empty each session. The size limit turns on JAX's file lock
# (filelock, test extra), which makes concurrent readers and writers safe.
# ACL_TEST_JAX_CACHE=0 turns it off.
if (
    os.environ.get("ACL_TEST_JAX_CACHE", "1") != "0"
    and "JAX_COMPILATION_CACHE_DIR" not in os.environ
):
    import tempfile

    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="acl_jax_xla_cache_")
    os.environ["ACL_TEST_JAX_CACHE_OWNER"] = str(os.getpid())
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
    os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(4 << 30))

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


# Modules by measured run time, longest first (the rest keep their order after these). Under
# launch/test.sh (`-n 2 --dist loadscope --no-loadscope-reorder`) each worker takes whole
# modules in this order, so the long ones start early and the two workers finish together,
# instead of one worker running test_train.py alone at the end (collection order is alphabetical).
LONGEST_FIRST = (
    "test_train.py",
    "test_objectives_momentum.py",
    "test_checkpoint_damage.py",
    "test_launch.py",
    "test_train_robustness.py",
    "test_eval.py",
    "test_wheel.py",
    "test_notebooks.py",
    "test_inference.py",
    "test_core_ecg.py",
    "test_beat_ssl.py",
    "test_objectives_leadwise.py",
    "test_objectives_redundancy.py",
    "test_presets.py",
)


def pytest_sessionfinish(session):
    # The process that made the cache removes it (the xdist controller, or a plain pytest run).
    if os.environ.get("ACL_TEST_JAX_CACHE_OWNER") == str(os.getpid()):
        import shutil

        shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable within a module
