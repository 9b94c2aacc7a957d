"""OUT/manifest.json: what a prepared dataset holds (schema in docs/contracts.md).

Built from per-shard summaries (`summarize_shard`) so that a resumed run, which keeps some
shards from an earlier process, produces the same manifest as an uninterrupted one: all the
sums are exact integers and merged in manifest order.
"""

from __future__ import annotations

import datetime
import json
import math
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import acl_jax
from acl_jax.data.convert import Converted
from acl_jax.data.shards import write_json_atomic
from acl_jax.leads import LEADS, NUM_LEADS

MANIFEST = "manifest.json"
VERSION = 1


def write_manifest(out: Path, manifest: dict[str, Any]) -> Path:
    """Writes OUT/manifest.json atomically (tmp + rename): it exists only when complete."""
    path = Path(out) / MANIFEST
    write_json_atomic(path, manifest)
    return path


def load_manifest(out: Path) -> dict[str, Any]:
    """Reads OUT/manifest.json; raises FileNotFoundError/ValueError saying what to do."""
    path = Path(out) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: {out} is not a prepared dataset (or its "
            "preparation did not finish); run python -m acl_jax.prepare"
        )
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(
            f"{path} is not valid JSON ({e}); rerun acl_jax.prepare with --overwrite"
        ) from e
    missing = [
        k for k in ("version", "fs", "leads", "splits", "tasks", "lead_stats") if k not in manifest
    ]
    if missing:
        raise ValueError(f"{path} lacks keys {missing}; rerun acl_jax.prepare with --overwrite")
    return manifest


def code_version() -> dict[str, str | None]:
    """acl_jax.__version__ plus the git commit of the source tree when there is one."""
    root = Path(acl_jax.__file__).resolve().parent.parent
    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"acl_jax": acl_jax.__version__, "git_commit": commit}


def summarize_shard(source_ids: list[str], results: Iterable[Converted]) -> dict[str, Any]:
    """What the manifest needs from one shard; JSON-ready (it is also the resume state)."""
    s = {
        "source_ids": source_ids,
        "num_records": 0,
        "skipped": [],
        "num_clipped": 0,
        "lead_sum": [0] * NUM_LEADS,
        "lead_sumsq": [0] * NUM_LEADS,
        "lead_n": [0] * NUM_LEADS,
        "label_counts": {},
    }
    patients = set()
    for r in results:
        if r.blob is None:
            s["skipped"].append({"id": r.id, "reason": r.reason})
            continue
        s["num_records"] += 1
        s["num_clipped"] += r.num_clipped
        patients.add(r.patient or f"record:{r.id}")
        for key in ("lead_sum", "lead_sumsq", "lead_n"):
            s[key] = [a + b for a, b in zip(s[key], getattr(r, key))]
        for task, classes in r.labels.items():
            counts = s["label_counts"].setdefault(task, {})
            for c in classes:
                counts[c] = counts.get(c, 0) + 1
    s["patients"] = sorted(patients)
    return s


def lead_stats(summaries: Iterable[dict[str, Any]]) -> dict[str, list[float]]:
    """Per-lead mean/std in uV over present leads; a lead never present gets (0, 1)."""
    tot = [[0, 0, 0] for _ in range(NUM_LEADS)]
    for s in summaries:
        for i in range(NUM_LEADS):
            tot[i][0] += s["lead_sum"][i]
            tot[i][1] += s["lead_sumsq"][i]
            tot[i][2] += s["lead_n"][i]
    mean, std = [], []
    for s1, s2, n in tot:
        m = s1 / n if n else 0.0
        var = s2 / n - m * m if n else 1.0
        mean.append(m)
        std.append(math.sqrt(max(var, 0.0)) or 1.0)
    return {"mean_uv": mean, "std_uv": std}


def build_manifest(
    *,
    args: dict[str, Any],
    split_shards: dict[str, list[tuple[str, dict[str, Any]]]],
    tasks: Iterable[str],
    num_unassigned: int,
    elapsed_s: float,
    stage_s: dict[str, float],
) -> dict[str, Any]:
    """Assembles the manifest from {split: [(shard relpath, summary), ...]} in shard order."""
    splits, skipped, task_counts = {}, [], {t: {} for t in tasks}
    clipped = 0
    for name, shards in split_shards.items():
        patients = set()
        for _, s in shards:
            patients.update(s["patients"])
            skipped.extend(s["skipped"])
            clipped += s["num_clipped"]
            for task, counts in s["label_counts"].items():
                per_split = task_counts.setdefault(task, {}).setdefault(name, {})
                for c, n in counts.items():
                    per_split[c] = per_split.get(c, 0) + n
        splits[name] = {
            "num_records": sum(s["num_records"] for _, s in shards),
            "num_patients": len(patients),
            "shards": [p for p, _ in shards],
        }
    stats_split = "train" if "train" in split_shards else next(iter(split_shards))
    tasks_out = {}
    for task, per_split in task_counts.items():
        classes = sorted({c for counts in per_split.values() for c in counts})
        tasks_out[task] = {
            "classes": classes,
            "counts": {
                name: {c: per_split.get(name, {}).get(c, 0) for c in classes} for name in splits
            },
        }
    return {
        "version": VERSION,
        "code_version": code_version(),
        "source": {"dataset": args["dataset"], "src": args["src"], "args": args},
        "fs": args["fs"],
        "leads": list(LEADS),
        "splits": splits,
        "tasks": tasks_out,
        "lead_stats": {**lead_stats(s for _, s in split_shards[stats_split]), "split": stats_split},
        "skipped": sorted(skipped, key=lambda d: d["id"]),
        "unassigned": num_unassigned,
        "num_clipped_samples": clipped,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "elapsed_s": round(elapsed_s, 3),
        "stage_s": {k: round(v, 3) for k, v in stage_s.items()},
    }
