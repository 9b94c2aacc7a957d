"""Per-record features of ECG records from an exported encoder.

  python -m acl_jax.embed --model MODEL_DIR --input PATH [PATH...] --out X.npy
      [--fs HZ --leads I,II,...]   (for .npy inputs)

Writes X.npy (N, D) float32, one row per usable record in input order (the paths in the order
given, a directory's records sorted by relative path), and X.records.txt with the record ids
(file stems) in the same order. Records that cannot be used are reported on stderr (id and
reason) and left out; the exit status is non-zero only when none could be used.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np

from acl_jax import cli
from acl_jax.inference.arrays import ModelFormatError
from acl_jax.inference.commands import InferArgs, join_inputs, run_inference


@dataclasses.dataclass(frozen=True, kw_only=True)
class EmbedArgs(InferArgs):
    pass


def ids_path(out: str | Path) -> Path:
    """X.npy -> X.records.txt: the record ids of the rows of X.npy."""
    return Path(out).with_suffix(".records.txt")


def embed(a: EmbedArgs) -> None:
    _, result = run_inference(a, predict=False)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, result.features)
    ids_path(out).write_text("".join(f"{i}\n" for i in result.ids))
    print(
        f"embedded {len(result.ids)} records ({len(result.skipped)} skipped) -> {out} "
        f"{list(result.features.shape)}, ids in {ids_path(out)}"
    )


def main(argv: list[str] | None = None) -> int:
    argv = join_inputs(sys.argv[1:] if argv is None else argv)
    return cli.run(
        EmbedArgs,
        embed,
        prog="python -m acl_jax.embed",
        doc=__doc__,
        argv=argv,
        errors=(ModelFormatError,),
    )


if __name__ == "__main__":
    sys.exit(main())
