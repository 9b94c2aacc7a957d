"""Class probabilities of ECG records from an exported encoder with a classifier head.

  python -m acl_jax.predict --model MODEL_DIR --input PATH [PATH...] --out preds.csv
      [--fs HZ --leads I,II,...]   (for .npy inputs)

Writes a CSV: first column `record` (the record's file stem, e.g. 00008_lr), then one
probability column per class label of the head, one row per usable record in input order.
Records that cannot be used are reported on stderr and left out; the exit status is non-zero
only when none could be used. A model exported without --classifier is refused.
"""

from __future__ import annotations

import csv
import dataclasses
import sys
from pathlib import Path

from acl_jax import cli
from acl_jax.inference.arrays import ModelFormatError
from acl_jax.inference.commands import InferArgs, join_inputs, run_inference


@dataclasses.dataclass(frozen=True, kw_only=True)
class PredictArgs(InferArgs):
    pass


def predict(a: PredictArgs) -> None:
    _, result = run_inference(a, predict=True)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["record", *result.labels])
        for rid, row in zip(result.ids, result.probabilities):
            w.writerow([rid, *(f"{p:.6f}" for p in row)])
    print(f"predicted {len(result.ids)} records ({len(result.skipped)} skipped) -> {out}")


def main(argv: list[str] | None = None) -> int:
    argv = join_inputs(sys.argv[1:] if argv is None else argv)
    return cli.run(
        PredictArgs,
        predict,
        prog="python -m acl_jax.predict",
        doc=__doc__,
        argv=argv,
        errors=(ModelFormatError,),
    )


if __name__ == "__main__":
    sys.exit(main())
