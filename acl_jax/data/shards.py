"""ArrayRecord shard files and the resume state of an unfinished `acl_jax.prepare` run.

Layout: OUT/<split>/<split>-00000-of-00004.array_record. A shard is written under a temporary
name (".tmp-<name>") and renamed once closed, so a killed run never leaves a file that looks
whole. After every completed shard, OUT/.prepare-state.json records the run arguments and, per
shard, the source ids it covers, what it holds and a sha256 of the file; a rerun with the same
arguments keeps the shards whose state still matches and redoes the rest.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from array_record.python.array_record_module import ArrayRecordReader, ArrayRecordWriter

# group_size:1 keeps O(1) random access per record (what Grain needs); zstd:3 is 0.8.6's
# default, spelled out so a library default change cannot silently change the files.
WRITER_OPTIONS = "group_size:1,zstd:3"
STATE_FILE = ".prepare-state.json"
STATE_VERSION = 1


def shard_name(split: str, index: int, num_shards: int) -> str:
    return f"{split}-{index:05d}-of-{num_shards:05d}.array_record"


def num_shards_for(num_records: int, shard_size: int) -> int:
    return -(-num_records // shard_size)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_shard(path: Path, blobs: Iterable[bytes]) -> tuple[int, str]:
    """Writes `blobs` to `path` via a temporary file; returns (num_records, sha256 of file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    writer = ArrayRecordWriter(str(tmp), WRITER_OPTIONS)
    n = 0
    try:
        for blob in blobs:
            writer.write(blob)
            n += 1
    finally:
        writer.close()
    os.replace(tmp, path)
    return n, file_sha256(path)


def read_shard(path: Path) -> list[bytes]:
    """All records of one shard, in order (for tests and small checks)."""
    reader = ArrayRecordReader(str(path))
    try:
        return list(reader.read_all())
    finally:
        reader.close()


def write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class PrepareState:
    """OUT/.prepare-state.json: {"version", "args", "shards": {relpath: entry}}.

    An entry is the `ShardSummary` dict of a completed shard plus its sha256; it is trusted on
    resume only if the shard would cover the same source ids and the file's hash still matches.
    """

    def __init__(self, out: Path, args: dict[str, Any]):
        self.path = out / STATE_FILE
        self.out = out
        self.args = args
        self.shards: dict[str, dict[str, Any]] = {}

    @classmethod
    def load(cls, out: Path) -> PrepareState | None:
        path = out / STATE_FILE
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
            state = cls(out, data["args"])
            state.shards = dict(data["shards"])
            if data["version"] != STATE_VERSION:
                raise ValueError(f"version {data['version']} != {STATE_VERSION}")
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path} is unreadable ({e}); delete it or use --overwrite") from e
        return state

    def save(self) -> None:
        write_json_atomic(
            self.path, {"version": STATE_VERSION, "args": self.args, "shards": self.shards}
        )

    def completed(self, relpath: str, source_ids: list[str]) -> dict[str, Any] | None:
        """The stored entry of a shard if it is complete and matches; None means redo it."""
        entry = self.shards.get(relpath)
        path = self.out / relpath
        if entry is None or entry.get("source_ids") != source_ids or not path.exists():
            return None
        if file_sha256(path) != entry.get("sha256"):
            return None
        return entry

    def record(self, relpath: str, entry: dict[str, Any]) -> None:
        self.shards[relpath] = entry
        self.save()


def remove_outputs(out: Path) -> None:
    """Deletes what a previous prepare run wrote to `out` (and nothing else)."""
    for name in ("manifest.json", STATE_FILE, ".tmp-manifest.json", f".tmp-{STATE_FILE}"):
        (out / name).unlink(missing_ok=True)
    for split_dir in (p for p in out.iterdir() if p.is_dir()):
        for f in split_dir.glob("*.array_record"):
            f.unlink()
        for f in split_dir.glob(".tmp-*.array_record"):
            f.unlink()
        if not any(split_dir.iterdir()):
            split_dir.rmdir()


def has_shards(out: Path) -> bool:
    return any(out.glob("*/*.array_record")) or any(out.glob("*/.tmp-*.array_record"))
