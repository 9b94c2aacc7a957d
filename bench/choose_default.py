"""ACL-ECG's default region objective, chosen on validation from a compare_methods table.

  python bench/choose_default.py bench/results/compare_seeds_1500.json [--seeds 3] [--out F.json]

Among the table's ACL-ECG rows (objective acl_ecg: the default and its METHOD:KEY=VALUE
variants), the one with the best mean VALIDATION macro AUROC over its seeds; test AUROC plays
no part. Every ACL-ECG row must have --seeds finished seeds (a choice between rows with different
numbers of seeds would favour the noisier one), else it refuses and names the rows that lack
them. Prints the ranking and the chosen row's config overrides; --out also writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path


def rank(table: dict, seeds: int) -> list[dict]:
    """ACL-ECG rows of a compare_methods JSON, best mean val macro AUROC first."""
    rows = [r for r in table["rows"] if r["objective"] == "acl_ecg"]
    if not rows:
        raise ValueError("the table has no ACL-ECG rows (objective acl_ecg)")
    out, short = [], []
    for r in rows:
        runs = [x for x in r["runs"] if "error" not in x and x["seed"] < seeds]
        if len(runs) < seeds:
            short.append(f"{r['method']} ({len(runs)} of {seeds})")
            continue
        val = [x["val_macro_auroc"] for x in runs]
        out.append(
            {
                "method": r["method"],
                "overrides": r["overrides"],
                "val_macro_auroc": statistics.fmean(val),
                "val_per_seed": val,
            }
        )
    if short:
        raise ValueError(
            "rows without every seed finished: "
            + ", ".join(short)
            + f"; run bench/compare_methods.py with --seeds {seeds} first"
        )
    return sorted(out, key=lambda r: -r["val_macro_auroc"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("table", help="OUT.json of bench/compare_methods.py")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..K-1 every row must have")
    p.add_argument("--out", default=None, help="also write the ranking and choice as JSON")
    a = p.parse_args()
    try:
        ranked = rank(json.loads(Path(a.table).read_text()), a.seeds)
    except (OSError, ValueError, KeyError) as e:
        sys.exit(f"choose_default: {a.table}: {e}")
    for r in ranked:
        vals = ", ".join(f"{v:.4f}" for v in r["val_per_seed"])
        print(f"{r['val_macro_auroc']:.4f}  {r['method']}  (val per seed: {vals})")
    best = ranked[0]
    print(f"chosen on val: {best['method']}  overrides: {best['overrides'] or 'none'}")
    if a.out:
        Path(a.out).write_text(json.dumps({"chosen": best, "ranking": ranked}, indent=2))


if __name__ == "__main__":
    main()
