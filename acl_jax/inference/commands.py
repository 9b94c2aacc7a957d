"""What `python -m acl_jax.embed` and `python -m acl_jax.predict` share: flags, input
gathering, the report of skipped records and the exit rule (non-zero only when no record
could be used)."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence

from acl_jax import cli


@dataclasses.dataclass(frozen=True, kw_only=True)
class InferArgs:
    model: str = cli.arg(help="Model directory (python -m acl_jax.export) or bundled name.")
    input: tuple[str, ...] = cli.arg(
        help="Records: WFDB .hea/.dat, CinC .hea/.mat, .npy, or directories (searched "
        "recursively); several paths after one --input."
    )
    out: str = cli.arg(help="Output file.")
    fs: float | None = cli.arg(None, help=".npy inputs: sampling rate in Hz.")
    leads: tuple[str, ...] | None = cli.arg(None, help=".npy inputs: lead names in row order.")
    device_batch: int = cli.arg(
        64, help="Windows per device and step (results do not depend on the device count)."
    )
    progress: bool = cli.arg(True, help="Show a progress bar on stderr.")


def join_inputs(argv: Sequence[str]) -> list[str]:
    """`--input A B C` -> `--input=A,B,C` (the cli module takes comma lists)."""
    out, i = [], 0
    argv = list(argv)
    while i < len(argv):
        a = argv[i]
        if a in ("--input", "--inputs"):
            j = i + 1
            while j < len(argv) and not argv[j].startswith("--"):
                j += 1
            out.append("--input=" + ",".join(argv[i + 1 : j]))
            i = j
        else:
            out.append(a)
            i += 1
    return out


def run_inference(a: InferArgs, predict: bool):
    """Loads the model and embeds or predicts; reports skips; Failure when nothing was used."""
    from acl_jax.inference.model import absent_leads_warning, load

    model = load(a.model)
    kw = dict(fs=a.fs, leads=a.leads, device_batch=a.device_batch, progress=a.progress)
    if predict and model.head is None:
        raise cli.Failure(
            f"{a.model} has no classifier head: export it with "
            "python -m acl_jax.export --classifier DIR"
        )
    result = model.predict(a.input, **kw) if predict else model.embed(a.input, **kw)
    for rid, reason in result.skipped:
        print(f"skipped {rid}: {reason}", file=sys.stderr)
    n = len(result.ids)
    warning = absent_leads_warning(result.absent, n)
    if warning:
        print(warning, file=sys.stderr)
    if n == 0:
        raise cli.Failure(
            f"no record under {', '.join(a.input)} could be used "
            f"({len(result.skipped)} skipped, reasons above)"
        )
    return model, result
