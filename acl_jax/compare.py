"""Is A better than B? A paired bootstrap over the test records of two eval results.

  python -m acl_jax.compare A.json B.json [--num 1000 --seed 0]

Prints the difference in test macro AUROC (A - B) with a 95% CI and a two-sided paired
bootstrap p-value over the shared test records (`acl_jax.eval.metrics.paired_bootstrap`).
The two result files (from `python -m acl_jax.eval --out`) must be of the same task, with the
same classes and the same test records with the same labels; anything else is an error.
Segmentation results (ludb_segmentation) are compared on test mean Dice the same way
(`paired_bootstrap_dice`); there "the same labels" means the same reference wave sample counts.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from acl_jax import cli
from acl_jax.eval.metrics import paired_bootstrap, paired_bootstrap_dice


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


def _order(a: dict, b: dict) -> np.ndarray:
    """Positions in B's test records of A's test record ids (the same set, else an error)."""
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
    return np.array([order[rid] for rid in ra["ids"]])


def aligned(a: dict, b: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels (N, C), scores of A, scores of B) on the shared test records, in A's order."""
    idx = _order(a, b)
    ra, rb = a["test_records"], b["test_records"]
    y = np.asarray(ra["labels"])
    if not np.array_equal(y, np.asarray(rb["labels"])[idx]):
        raise CompareError(
            "the same test record ids carry different labels in A and B: they "
            "come from differently prepared data"
        )
    return y, np.asarray(ra["scores"], float), np.asarray(rb["scores"], float)[idx]


def aligned_counts(a: dict, b: dict) -> tuple[np.ndarray, np.ndarray]:
    """Segmentation: per-record Dice counts (N, 3, 3) of A and B on the shared test records."""
    idx = _order(a, b)
    ca = np.asarray(a["test_records"]["counts"])
    cb = np.asarray(b["test_records"]["counts"])[idx]
    if not np.array_equal(ca[..., 2], cb[..., 2]):  # reference wave samples per record
        raise CompareError(
            "the same test records carry different reference labels in A and B: they were "
            "evaluated at different rates (checkpoint fs) or from different LUDB files"
        )
    return ca, cb


def compare(path_a: str, path_b: str, *, num: int = 1000, seed: int = 0) -> dict:
    """The paired comparison of two result files: delta (A - B), CI, p-value, both scores."""
    a, b = _load(path_a), _load(path_b)
    if "counts" in a["test_records"]:
        ca, cb = aligned_counts(a, b)
        out = paired_bootstrap_dice(ca, cb, num=num, seed=seed)
        metric, delta, n = "mean_dice", out["delta_mean_dice"], len(ca)
    else:
        y, sa, sb = aligned(a, b)
        out = paired_bootstrap(y, sa, sb, num=num, seed=seed)
        metric, delta, n = "macro_auroc", out["delta_macro_auroc"], int(y.shape[0])
    return {
        **out,
        "metric": metric,
        "delta": delta,
        "task": a["task"],
        "num_records": n,
        "a": {"file": str(path_a), metric: a["test"][metric]},
        "b": {"file": str(path_b), metric: b["test"][metric]},
    }


@dataclasses.dataclass(frozen=True, kw_only=True)
class CompareArgs:
    a: str = cli.arg(positional=True, help="Result A.json (python -m acl_jax.eval --out).")
    b: str = cli.arg(positional=True, help="Result B.json, of the same task and test records.")
    num: int = cli.arg(1000, help="Bootstrap resamples.")
    seed: int = cli.arg(0, help="Bootstrap seed.")


def _main(c: CompareArgs) -> None:
    r = compare(c.a, c.b, num=c.num, seed=c.seed)
    lo, hi = r["ci"]
    m = r["metric"]
    name = {"macro_auroc": "macro AUROC", "mean_dice": "mean Dice"}[m]
    print(
        f"{r['task']}: {r['num_records']} shared test records\n"
        f"A {r['a']['file']}: {name} {r['a'][m]:.4f}\n"
        f"B {r['b']['file']}: {name} {r['b'][m]:.4f}\n"
        f"A - B = {r['delta']:+.4f} (95% CI [{lo:+.4f}, {hi:+.4f}]), paired "
        f"bootstrap p = {r['p_value']:.4f} ({r['num_resamples']} resamples)"
    )


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status (acl_jax.cli)."""
    return cli.run(
        CompareArgs,
        _main,
        prog="python -m acl_jax.compare",
        doc=__doc__,
        argv=argv,
        errors=(CompareError,),
    )


if __name__ == "__main__":
    sys.exit(main())
