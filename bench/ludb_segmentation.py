"""LUDB P/QRS/T segmentation Dice of several pretrained encoders beside the untrained one.

  python bench/ludb_segmentation.py --ludb /tmp/acl_data/ludb/data \
      --workdirs acl_ecg=/tmp/acl_compare/acl_ecg,beat_ssl=/tmp/acl_compare/beat_ssl \
      [--random acl_ecg,core_ecg] [--steps 1500] [--out bench/results/ludb_segmentation]

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


def result_path(out: Path, label: str) -> Path:
    return out.with_name(f"{out.name}_{label.replace(' ', '_')}.json")


def paired_vs_random(rows: list[dict], out: Path) -> None:
    """Each pretrained row's test mean Dice minus the untrained encoder's of the SAME
    architecture (same stored model config), paired over the test records (acl_jax.compare)."""
    from acl_jax.compare import compare  # imports JAX

    def model_of(label: str) -> dict:
        return json.loads(result_path(out, label).read_text())["config"]["model"]

    randoms = [r["encoder"] for r in rows if r["encoder"].startswith("random") and "dice" in r]
    for r in rows:
        if "dice" not in r or r["encoder"] in randoms:
            continue
        same = [x for x in randoms if model_of(x) == model_of(r["encoder"])]
        if same:
            res = compare(str(result_path(out, r["encoder"])), str(result_path(out, same[0])))
            r["vs_random"] = {
                "against": same[0],
                "delta": res["delta"],
                "ci": res["ci"],
                "p": res["p_value"],
            }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ludb", required=True, help="folder of raw LUDB records")
    p.add_argument("--workdirs", required=True, help="LABEL=WORKDIR,... pretraining runs")
    p.add_argument(
        "--random",
        default=None,
        help="LABEL,... of --workdirs whose architecture also gets an untrained (--init random) "
        "row (default: the first); the checkpoint fixes the architecture and the rate",
    )
    p.add_argument("--only", default=None, help="LABEL,... rows to (re)run; others are reused")
    p.add_argument("--steps", type=int, default=1500, help="segmentation head steps (cap)")
    p.add_argument("--out", default="bench/results/ludb_segmentation")
    a = p.parse_args()
    specs = [s.partition("=") for s in a.workdirs.split(",") if s]
    if any(not sep for _, sep, _ in specs):
        raise SystemExit("--workdirs: expected LABEL=WORKDIR,...")
    runs = [(label, ["--workdir", wd]) for label, _, wd in specs]
    workdirs = {label: wd for label, _, wd in specs}
    for label in (a.random or specs[0][0]).split(","):
        if label not in workdirs:
            raise SystemExit(f"--random {label!r} is not a --workdirs label ({sorted(workdirs)})")
        runs.append(
            (f"random init ({label} arch)", ["--workdir", workdirs[label], "--init", "random"])
        )
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    old_rows = {}
    if a.only and out.with_suffix(".json").exists():
        old_rows = {
            r["encoder"]: r for r in json.loads(out.with_suffix(".json").read_text())["rows"]
        }
    rows = []
    for label, source in runs:
        if a.only and label.split(" (")[0] not in a.only.split(",") and label in old_rows:
            rows.append(old_rows[label])
            continue
        stem = result_path(out, label).with_suffix("")
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
    paired_vs_random(rows, out)
    out.with_suffix(".json").write_text(json.dumps({"ludb": a.ludb, "rows": rows}, indent=2))
    lines = [
        f"LUDB segmentation (frozen encoder + per-time head, {a.steps}-step cap, model "
        "selection on val records); test Dice with 95% bootstrap CI over records.",
        "",
        "| encoder | P | QRS | T | mean [95% CI] | mean - random init [95% CI], p | val mean | "
        "best step |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "refused" in r:
            lines.append(f"| {r['encoder']} | refused: {r['refused']} | | | | | | |")
            continue
        d, c, v = r["dice"], r["mean_dice_ci"], r.get("vs_random")
        paired = (
            f"{v['delta']:+.3f} [{v['ci'][0]:+.3f}, {v['ci'][1]:+.3f}], p={v['p']:.3f}" if v else ""
        )
        lines.append(
            f"| {r['encoder']} | {d['P']:.3f} | {d['QRS']:.3f} | {d['T']:.3f} | "
            f"{r['mean_dice']:.3f} [{c[0]:.3f}, {c[1]:.3f}] | {paired} | "
            f"{r['val_mean_dice']:.3f} | {r['best_step']} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
