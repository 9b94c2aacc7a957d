"""LUDB P/QRS/T segmentation Dice of several pretrained encoders beside the untrained one.

  python bench/ludb_segmentation.py --ludb /tmp/acl_data/ludb/data \
      --workdirs acl_ecg=/tmp/acl_compare/acl_ecg,beat_ssl=/tmp/acl_compare/beat_ssl \
      [--random-config configs/acl_ecg_ptbxl.py] [--steps 1500] [--out bench/results/ludb_seg]

Each row is one `python -m acl_jax.eval --task ludb_segmentation --protocol linear` process:
the encoder frozen, a per-time head trained on LUDB's train records (60%), the step chosen on
val (20%), Dice per wave on test (20%, read once) with 95% bootstrap CIs over records. A
checkpoint whose encoder has no per-time features (CLEAR's heartbeat tokens) is refused by the
eval binary; its row records the refusal instead of a number. Writes OUT.json and OUT.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ludb", required=True, help="folder of raw LUDB records")
    p.add_argument("--workdirs", required=True, help="LABEL=WORKDIR,... pretraining runs")
    p.add_argument("--random-config", default="configs/acl_ecg_ptbxl.py")
    p.add_argument("--steps", type=int, default=1500, help="segmentation head steps (cap)")
    p.add_argument("--out", default="bench/results/ludb_segmentation")
    a = p.parse_args()
    specs = [s.partition("=") for s in a.workdirs.split(",") if s]
    if any(not sep for _, sep, _ in specs):
        raise SystemExit("--workdirs: expected LABEL=WORKDIR,...")
    runs = [(label, ["--workdir", wd]) for label, _, wd in specs]
    runs.append(("random init", ["--init", "random", "--config", a.random_config]))
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for label, source in runs:
        stem = out.with_name(f"{out.name}_{label.replace(' ', '_')}")
        cmd = [
            sys.executable,
            "-m",
            "acl_jax.eval",
            *source,
            "--data",
            a.ludb,
            "--task",
            "ludb_segmentation",
            "--protocol",
            "linear",
            "--finetune-steps",
            str(a.steps),
            "--out",
            f"{stem}.json",
        ]
        print("+", " ".join(cmd), flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        row = {"encoder": label, "command": " ".join(cmd[1:]), "seconds": time.perf_counter() - t0}
        if proc.returncode != 0:
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            row["refused"] = lines[-1] if lines else f"exit {proc.returncode}"
        else:
            res = json.loads(Path(f"{stem}.json").read_text())
            test = res["test"]
            row |= {
                "dice": test["dice"],
                "dice_ci": test["dice_ci"],
                "mean_dice": test["mean_dice"],
                "mean_dice_ci": test["mean_dice_ci"],
                "val_mean_dice": res["selection"]["best_val_mean_dice"],
                "best_step": res["selection"]["best_step"],
                "test_records": test["num_records"],
            }
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "command"}), flush=True)
    out.with_suffix(".json").write_text(json.dumps({"ludb": a.ludb, "rows": rows}, indent=2))
    lines = [
        f"LUDB segmentation (frozen encoder + per-time head, {a.steps}-step cap, model "
        "selection on val records); test Dice with 95% bootstrap CI over records.",
        "",
        "| encoder | P | QRS | T | mean [95% CI] | val mean | best step |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "refused" in r:
            lines.append(f"| {r['encoder']} | refused: {r['refused']} | | | | | |")
            continue
        d, c = r["dice"], r["mean_dice_ci"]
        lines.append(
            f"| {r['encoder']} | {d['P']:.3f} | {d['QRS']:.3f} | {d['T']:.3f} | "
            f"{r['mean_dice']:.3f} [{c[0]:.3f}, {c[1]:.3f}] | {r['val_mean_dice']:.3f} | "
            f"{r['best_step']} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
