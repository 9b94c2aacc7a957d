"""One-time conversion of an ECG dataset on disk into sharded ArrayRecord training data.

  python -m acl_jax.prepare --dataset ptbxl --src /data/ptbxl --out /data/ptbxl100 --fs 100

Writes OUT/<split>/<split>-NNNNN-of-MMMMM.array_record and, last, OUT/manifest.json (layout in
docs/contracts.md). A killed run resumes from its complete shards when rerun with the same
arguments; a finished OUT is never overwritten without --overwrite.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from acl_jax import cli
from acl_jax.cli import arg
from acl_jax.data import convert, manifest, shards, splits
from acl_jax.data.preprocess import PreprocessConfig
from acl_jax.data.sources import LabelFileError

DEFAULT_SPLITS = {"ptbxl": "train=1-8,val=9,test=10"}
FRACTION_SPLITS = "train=0.8,val=0.1,test=0.1"
RATES = (100, 250, 500)


class PrepareError(Exception):
    """A user-facing failure: the CLI prints the message and exits non-zero."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class PrepareArgs:
    """One preparation; also the flags of `python -m acl_jax.prepare` (defaults only here)."""

    dataset: str = arg(choices=sorted(convert.READERS), help="Source dataset reader.")
    src: str = arg(help="Dataset folder on disk.")
    out: str = arg(help="Output folder for shards and manifest.json.")
    fs: int = arg(100, help=f"Prepared sampling rate in Hz, one of {RATES}.")
    splits: str | None = arg(
        None,
        help=f"Fold sets 'train=1-8,val=9,test=10' or patient fractions '{FRACTION_SPLITS}'. "
        "Default: PTB-XL's folds, else those fractions.",
    )
    split_seed: int = arg(0, help="Seed of the fractional patient split.")
    shard_size: int = arg(2000, help="Records per shard.")
    workers: int | None = arg(None, help="Worker processes (default: os.cpu_count()).")
    limit: int | None = arg(None, help="Only the first N source records (quick trials).")
    max_skip_fraction: float = arg(0.01, help="Fail when a larger fraction of records is skipped.")
    highpass: float | None = arg(
        None, help="High-pass cutoff in Hz (0 disables; default: PreprocessConfig's)."
    )
    lowpass: float | None = arg(
        None, help="Low-pass cutoff in Hz (0 disables; default: PreprocessConfig's)."
    )
    overwrite: bool = arg(False, help="Delete an existing prepared OUT first.")


def _identity(a: PrepareArgs, spec: splits.SplitSpec) -> dict[str, Any]:
    """The arguments that determine the output (not workers, thresholds or --overwrite)."""
    defaults = PreprocessConfig(fs=a.fs)
    return {
        "dataset": a.dataset,
        "src": str(Path(a.src).resolve()),
        "fs": a.fs,
        "splits": spec.canonical(),
        "split_seed": a.split_seed if spec.fractions else None,
        "shard_size": a.shard_size,
        "limit": a.limit,
        "highpass_hz": _cutoff(a.highpass, defaults.highpass_hz),
        "lowpass_hz": _cutoff(a.lowpass, defaults.lowpass_hz),
    }


def _cutoff(flag: float | None, default: float | None) -> float | None:
    """--highpass/--lowpass: None keeps PreprocessConfig's default, 0 disables (None there)."""
    value = default if flag is None else flag
    if value is not None and value < 0:
        raise PrepareError(f"filter cutoff {value} Hz must be >= 0 (0 disables)")
    return float(value) if value else None


def _diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = sorted(set(old) | set(new))
    return "; ".join(
        f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)
    )


def _check_out(out: Path, ident: dict[str, Any], overwrite: bool) -> dict[str, Any] | None:
    """Returns the existing manifest when OUT is already prepared with these arguments."""
    if overwrite and out.exists():
        shards.remove_outputs(out)
    if (out / manifest.MANIFEST).exists():
        done = manifest.load_manifest(out)
        if done["source"]["args"] == ident:
            return done
        raise PrepareError(
            f"{out} already holds a prepared dataset made with other arguments "
            f"({_diff(done['source']['args'], ident)}); use --overwrite or a "
            "new --out"
        )
    state = shards.PrepareState.load(out) if out.exists() else None
    if state is not None and state.args != ident:
        raise PrepareError(
            f"{out} holds an unfinished run with other arguments "
            f"({_diff(state.args, ident)}); rerun with those arguments to resume, "
            "or use --overwrite or a new --out"
        )
    if state is None and out.exists() and shards.has_shards(out):
        raise PrepareError(
            f"{out} has shard files but no {shards.STATE_FILE} to resume from; "
            "use --overwrite or a new --out"
        )
    return None


def run(a: PrepareArgs) -> dict[str, Any]:
    """Prepares `a.src` into `a.out`; returns the manifest. Raises PrepareError on failure."""
    t0 = time.perf_counter()
    if a.fs not in RATES:
        raise PrepareError(f"--fs {a.fs} is not supported; choose from {RATES}")
    if a.shard_size < 1:
        raise PrepareError(f"--shard-size must be >= 1, got {a.shard_size}")
    src, out = Path(a.src), Path(a.out)
    if not src.is_dir():
        raise PrepareError(f"--src {src} is not a directory")
    try:
        reader = convert.reader_module(a.dataset)
        spec = splits.parse_splits(a.splits or DEFAULT_SPLITS.get(a.dataset, FRACTION_SPLITS))
    except ValueError as e:
        raise PrepareError(str(e)) from e
    ident = _identity(a, spec)
    done = _check_out(out, ident, a.overwrite)
    if done is not None:
        # A run that failed its skip check left a complete manifest: fail the same way again
        # (a retry must not turn the failure into success) unless the threshold now allows it.
        _check_skips(out, done, a.max_skip_fraction)
        print(f"{out} is already prepared with these arguments; nothing to do")
        return done
    try:
        extra = {"prefer_hr": a.fs > 100} if a.dataset == "ptbxl" else {}
        records = reader.list_records(src, limit=a.limit, **extra)
        by_split, unassigned = splits.assign_splits(records, spec, a.split_seed)
    except (LabelFileError, ValueError) as e:
        raise PrepareError(str(e)) from e
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*/.tmp-*.array_record"):
        stale.unlink()  # a shard being written when an earlier run died
    state = shards.PrepareState.load(out) or shards.PrepareState(out, ident)
    state.save()

    # Plan shards by position among the split's source records, so a shard's contents do not
    # depend on skips elsewhere and each shard can be kept or redone on its own.
    plan, todo = [], []
    for name, recs in by_split.items():
        n = shards.num_shards_for(len(recs), a.shard_size)
        for i in range(n):
            chunk = recs[i * a.shard_size : (i + 1) * a.shard_size]
            rel = f"{name}/{shards.shard_name(name, i, n)}"
            kept = state.completed(rel, [r.id for r in chunk])
            plan.append((name, rel, chunk, kept))
            if kept is None:
                todo.extend(chunk)

    cfg = convert.ConvertConfig(a.dataset, a.fs, ident["highpass_hz"], ident["lowpass_hz"])
    workers = a.workers or os.cpu_count() or 1
    results = convert.convert_iter(todo, cfg, workers)
    stage_s = dict.fromkeys(convert.STAGES, 0.0)
    split_shards: dict[str, list] = {name: [] for name in by_split}
    with tqdm(total=len(todo), desc="prepare", unit="rec", disable=None) as bar:
        for name, rel, chunk, kept in plan:
            if kept is None:
                kept = _write_shard(out / rel, chunk, results, stage_s, bar)
                state.record(rel, kept)
            split_shards[name].append((rel, kept))
    for rel in set(state.shards) - {rel for _, rel, _, _ in plan}:
        (out / rel).unlink(missing_ok=True)  # planned by an earlier run over other input

    elapsed = time.perf_counter() - t0
    result = manifest.build_manifest(
        args=ident,
        split_shards=split_shards,
        tasks=reader.TASKS,
        num_unassigned=len(unassigned),
        elapsed_s=elapsed,
        stage_s=stage_s,
    )
    manifest.write_manifest(out, result)
    state.path.unlink()  # the manifest now marks the run as complete
    _report(out, result, len(todo), elapsed)
    _check_skips(out, result, a.max_skip_fraction)
    return result


def _check_skips(out: Path, m: dict[str, Any], max_fraction: float) -> None:
    """PrepareError when the manifest's skipped share of the split records is above
    --max-skip-fraction (the manifest stays: it lists every skip with its reason)."""
    skipped = len(m["skipped"])
    attempted = skipped + sum(s["num_records"] for s in m["splits"].values())
    frac = skipped / max(attempted, 1)
    if frac > max_fraction:
        raise PrepareError(
            f"skipped {skipped} of {attempted} records ({frac:.2%}) > --max-skip-fraction "
            f"{max_fraction:g}; the list with reasons is in {out / manifest.MANIFEST}"
        )


def _write_shard(path: Path, chunk, results, stage_s: dict[str, float], bar) -> dict[str, Any]:
    """Pulls len(chunk) conversion results, streams their records into one shard and returns
    the shard's summary (the resume-state entry)."""
    metas = []

    def blobs():
        for _ in chunk:
            r = next(results)
            for stage, sec in r.seconds.items():
                stage_s[stage] += sec
            bar.update(1)
            if r.blob is not None:
                yield r.blob
            # Keep only the metadata: a shard's blobs need not sit in memory.
            metas.append(dataclasses.replace(r, blob=b"" if r.blob is not None else None))

    _, sha = shards.write_shard(path, blobs())
    return {**manifest.summarize_shard([r.id for r in chunk], metas), "sha256": sha}


def _report(out: Path, m: dict[str, Any], converted: int, elapsed: float) -> None:
    per_split = ", ".join(f"{k} {v['num_records']}" for k, v in m["splits"].items())
    first = "; ".join(f"{s['id']}: {s['reason']}" for s in m["skipped"][:3])
    print(
        f"prepared {m['source']['dataset']} -> {out}: {per_split} records; "
        f"skipped {len(m['skipped'])}{f' ({first})' if first else ''}; "
        f"unassigned {m['unassigned']}; {elapsed:.1f} s, "
        f"{converted / max(elapsed, 1e-9):.1f} records/s"
    )


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status (acl_jax.cli)."""
    return cli.run(
        PrepareArgs,
        run,
        prog="python -m acl_jax.prepare",
        doc=__doc__,
        argv=argv,
        errors=(PrepareError,),
    )


if __name__ == "__main__":
    sys.exit(main())
