"""The accelerator presets lower for a pod, and the device bench runs end to end.

For each preset in configs/ (bench/presets.py: PRESETS), the FULL training step that
acl_jax.train.step.make_train_step builds (augmentation, encoder, loss, gradient, optimizer
update) is exported with `jax.export` for the "tpu" and "cuda" platforms over an abstract
32-device "data" mesh, from abstract state (nnx.eval_shape): nothing is allocated and no
accelerator is needed, so a lowering problem shows up here rather than on a rented pod.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest

REPO = Path(__file__).resolve().parent.parent

sys.path.insert(0, str(REPO / "bench"))
import presets  # noqa: E402


def _check_pod_export(cfg) -> jax.export.Exported:
    exported = presets.export_for_pod(cfg)
    assert exported.nr_devices == presets.POD_DEVICES
    assert set(exported.platforms) == {"tpu", "cuda"}
    # Inputs: every state array, the 5 batch arrays at the GLOBAL batch, the step index.
    b, w = cfg.data.batch_size, cfg.data.window
    assert (b, 12, w) in [a.shape for a in exported.in_avals]
    # Outputs: the new state (same arrays as the input state) plus the metrics, loss included.
    n_state = len(exported.in_avals) - 6
    assert len(exported.out_avals) > n_state
    assert any(a.shape == () for a in exported.out_avals[n_state:])
    return exported


@pytest.mark.parametrize("name", sorted(presets.PRESETS))
def test_preset_step_exports_for_a_32_chip_pod(name):
    cfg = presets.load_preset(name)
    assert cfg.data.window == 5000 and cfg.data.batch_size % presets.POD_DEVICES == 0
    _check_pod_export(cfg)


def test_preset_step_exports_in_bfloat16():
    exported = _check_pod_export(presets.load_preset("acl_ecg_500hz_1m", dtype="bfloat16"))
    text = exported.mlir_module()
    # The convolutions themselves run in bfloat16 (not only casts around float32 ones).
    assert any("convolution" in line and "bf16" in line for line in text.splitlines())


def test_device_bench_tiny_runs_end_to_end(prepared_sample, tmp_path):
    out = tmp_path / "device.json"
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "PYTHONPATH": str(REPO),
        "JAX_PLATFORMS": "cpu",
        "JAX_NUM_CPU_DEVICES": "1",
        "ACL_DEVICE_DATA": str(prepared_sample),
        "ACL_DEVICE_OUT": str(out),
    }
    proc = subprocess.run(
        # float32 only: each dtype is one more CPU compile of the step (~8 s); the bfloat16
        # step is checked by test_preset_step_exports_in_bfloat16.
        ["bash", str(REPO / "bench" / "device.sh"), "--tiny", "--", "--dtypes", "float32"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["platform"] == "cpu" and result["devices"] == 1
    assert [(r["preset"], r["dtype"], r["batch"]) for r in result["rows"]] == [
        ("tiny", "float32", 8)
    ]
    for row in result["rows"]:
        assert row["samples_per_s"] > 0 and row["flops_per_step"] > 0
        assert row["pipeline_records_per_s"] > 0 and row["pipeline_vs_step"] > 0
        assert row["mfu"] is None and row["peak_tflops_per_device"] is None  # no CPU peak
        assert row["loss_finite"]


def test_peak_table_matches_device_kinds():
    import device_step

    assert device_step.peak_tflops("NVIDIA H100 80GB HBM3", "bfloat16") == 989.4
    assert device_step.peak_tflops("TPU v5 lite", "float32") == 197.0
    assert device_step.peak_tflops("TPU v5p", "bfloat16") == 459.0
    assert device_step.peak_tflops("TPU v6 lite", "bfloat16") == 918.0
    assert device_step.peak_tflops("cpu", "float32") is None
