"""`python -m acl_jax.compare A.json B.json [--num 1000 --seed 0]`: is A better than B?

Prints the difference in test macro AUROC (A - B) with a 95% CI and a two-sided paired
bootstrap p-value over the shared test records (`acl_jax.eval.metrics.paired_bootstrap`).
The two result files (from `python -m acl_jax.eval --out`) must be of the same task, with the
same classes and the same test records with the same labels; anything else is an error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from absl import app, flags

from acl_jax.eval.metrics import paired_bootstrap

flags.DEFINE_integer("num", 1000, "Bootstrap resamples.")
flags.DEFINE_integer("seed", 0, "Bootstrap seed.")
FLAGS = flags.FLAGS


class CompareError(ValueError):
    pass


def _load(path: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise CompareError(
            f"{p} does not exist: pass two files written by "
            "`python -m acl_jax.eval --out FILE.json`"
        )
    result = json.loads(p.read_text())
    if "test_records" not in result:
        raise CompareError(
            f"{p} has no per-record test scores ('test_records'): re-run "
            "python -m acl_jax.eval with --out"
        )
    return result


def aligned(a: dict, b: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels (N, C), scores of A, scores of B) on the shared test records, in A's order."""
    for key in ("task", "classes"):
        if a[key] != b[key]:
            raise CompareError(
                f"the results differ in {key}: {a[key]!r} vs {b[key]!r}; compare "
                "evaluations of the same task"
            )
    ra, rb = a["test_records"], b["test_records"]
    if set(ra["ids"]) != set(rb["ids"]) or len(ra["ids"]) != len(rb["ids"]):
        only_a = sorted(set(ra["ids"]) - set(rb["ids"]))[:5]
        only_b = sorted(set(rb["ids"]) - set(ra["ids"]))[:5]
        raise CompareError(
            f"the results were evaluated on different test records ({len(ra['ids'])}"
            f" vs {len(rb['ids'])}; only in A e.g. {only_a}, only in B e.g. "
            f"{only_b}): evaluate both on the same data and --splits"
        )
    order = {rid: i for i, rid in enumerate(rb["ids"])}
    idx = np.array([order[rid] for rid in ra["ids"]])
    y = np.asarray(ra["labels"])
    if not np.array_equal(y, np.asarray(rb["labels"])[idx]):
        raise CompareError(
            "the same test record ids carry different labels in A and B: they "
            "come from differently prepared data"
        )
    return y, np.asarray(ra["scores"], float), np.asarray(rb["scores"], float)[idx]


def compare(path_a: str, path_b: str, *, num: int = 1000, seed: int = 0) -> dict:
    a, b = _load(path_a), _load(path_b)
    y, sa, sb = aligned(a, b)
    out = paired_bootstrap(y, sa, sb, num=num, seed=seed)
    return {
        **out,
        "task": a["task"],
        "num_records": int(y.shape[0]),
        "a": {"file": str(path_a), "macro_auroc": a["test"]["macro_auroc"]},
        "b": {"file": str(path_b), "macro_auroc": b["test"]["macro_auroc"]},
    }


def main(argv: list[str]) -> None:
    if len(argv) != 3:
        sys.exit("usage: python -m acl_jax.compare A.json B.json [--num N --seed S]")
    try:
        r = compare(argv[1], argv[2], num=FLAGS.num, seed=FLAGS.seed)
    except CompareError as e:
        sys.exit(f"error: {e}")
    lo, hi = r["ci"]
    print(
        f"{r['task']}: {r['num_records']} shared test records\n"
        f"A {r['a']['file']}: macro AUROC {r['a']['macro_auroc']:.4f}\n"
        f"B {r['b']['file']}: macro AUROC {r['b']['macro_auroc']:.4f}\n"
        f"A - B = {r['delta_macro_auroc']:+.4f} (95% CI [{lo:+.4f}, {hi:+.4f}]), paired "
        f"bootstrap p = {r['p_value']:.4f} ({r['num_resamples']} resamples)"
    )


if __name__ == "__main__":
    app.run(main)
