"""Throughput of `acl_jax.load(...).embed` / `.predict` on real WFDB records: records/s
including reading the files (header + signal), preprocessing (prepare's functions) and the
encoder on all devices (CPU here).

  PYTHONPATH=. .venv/bin/python bench/infer.py [--src /work/data/ptbxl/records100]
      [--limit 2000] [--configs tiny,acl_ecg_ptbxl] [--bundled acl_ecg_ptbxl100] [--rounds 2]

Models: the bundled models by name (--bundled), and untrained encoders of each config (--configs;
the weights do not change the cost) written as model directories with
`acl_jax.export.write_model_dir`, with a seeded random linear head for predict. Also times
reading + preprocessing alone, and the encoder alone on the same records already prepared (the
ceiling the devices set). Writes bench/results/infer.json; the load
average before and after is recorded (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

import acl_jax  # noqa: E402
from acl_jax.config import load_config  # noqa: E402
from acl_jax.export import write_model_dir  # noqa: E402
from acl_jax.inference.classifier import LinearHead  # noqa: E402
from acl_jax.inference.runner import embed_stream  # noqa: E402
from acl_jax.leads import LEADS  # noqa: E402
from acl_jax.objectives import build_pretrainer  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
# What prepare's manifest holds about preprocessing (defaults of `python -m acl_jax.prepare`).
MANIFEST = {
    "fs": 100,
    "leads": list(LEADS),
    "source": {"dataset": "ptbxl", "src": "", "args": {"highpass_hz": 0.5, "lowpass_hz": 40.0}},
    "splits": {},
}


def make_model(config: str, out: Path) -> Path:
    cfg = load_config(REPO / "configs" / f"{config}.py")
    enc = build_pretrainer(cfg, fs=100, bn_axis=None, rngs=nnx.Rngs(0)).encoder
    rng = np.random.default_rng(0)
    d, c = enc.dim, 5
    head = LinearHead(
        weight=rng.normal(size=(d, c)) / np.sqrt(d),
        bias=np.zeros(c),
        mean=np.zeros(d),
        std=np.ones(d),
        labels=("CD", "HYP", "MI", "NORM", "STTC"),
        thresholds=(0.5,) * c,
    )
    write_model_dir(out, enc, cfg, 100, 0, MANIFEST, head=head, name=config)
    return out


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--src", default="/work/data/ptbxl/records100")
    p.add_argument("--limit", type=int, default=2000)
    p.add_argument("--configs", default="tiny,acl_ecg_ptbxl", help="untrained models ('' for none)")
    p.add_argument("--bundled", default="acl_ecg_ptbxl100", help="bundled models ('' for none)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "infer.json"))
    a = p.parse_args()
    import jax

    paths = [str(x) for x in sorted(Path(a.src).rglob("*.hea"))[: a.limit]]
    n = len(paths)
    result = {
        "records": n,
        "src": a.src,
        "record": "10 s, 12 leads, 100 Hz, WFDB (format 16)",
        "devices": jax.device_count(),
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg(),
        "models": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        names = [("config", c) for c in a.configs.split(",") if c]
        names += [("bundled", b) for b in a.bundled.split(",") if b]
        for kind, config in names:
            made = make_model(config, Path(tmp) / config) if kind == "config" else None
            model = acl_jax.load(str(made) if made else config)
            model.embed(paths[:64])  # compile outside the timing
            rows = {"embed": [], "predict": [], "read_preprocess": [], "encoder_only": []}
            for _ in range(a.rounds):  # interleaved: background load hits all alike
                items = []
                rows["read_preprocess"].append(
                    timed(lambda m=model, out=items: out.extend(list(m.load_inputs(paths))[1:]))
                )
                # The devices' share alone: the same records, already prepared in memory.
                rows["encoder_only"].append(
                    timed(lambda m=model, it=items: embed_stream(m, iter(it), 64, None, None))
                )
                rows["embed"].append(timed(lambda m=model: m.embed(paths)))
                rows["predict"].append(timed(lambda m=model: m.predict(paths)))
            result["models"][config] = {
                "encoder": type(model.encoder).__name__,
                "num_params": json.loads((model.directory / "card.json").read_text())["encoder"][
                    "num_params"
                ],
                "weights": "bundled (trained)" if made is None else "untrained (same cost)",
                **{
                    f"{k}_records_per_s": round(n / float(np.median(v)), 1) for k, v in rows.items()
                },
                "seconds": {k: [round(x, 2) for x in v] for k, v in rows.items()},
            }
            print(config, result["models"][config], flush=True)
    result["load_after"] = os.getloadavg()
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
