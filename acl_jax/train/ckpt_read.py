"""Reading one item of one checkpoint step so that any failure is one clean error.

Orbax, TensorStore, Grain and json raise many exception types for a missing or truncated file
(and a broken array file makes Orbax's asyncio reads print an 'Event loop is closed' traceback per
pending read). Here each becomes `Unreadable(step, item, first line of the error)`, which
acl_jax.train.checkpoint turns into a fallback to an older step or a one-line CheckpointError.
"""

from __future__ import annotations

import json
import sys

import orbax.checkpoint as ocp
import tensorstore as ts
from etils import epath


class CheckpointError(ValueError):
    """A checkpoint that cannot be used (damaged, non-finite, none intact); the message names
    the step and the fix."""


class CheckpointNotFound(CheckpointError, FileNotFoundError):
    """No checkpoint where one was asked for (no workdir, an unknown step, or one deleted by the
    trainer's keep=N rotation while it was read)."""


class Unreadable(Exception):
    """One item of one step failed to restore (internal: callers see CheckpointError)."""

    def __init__(self, step: int, item: str, error: BaseException):
        # The first line only, without TensorStore's multi-page spec dump.
        first = (str(error).strip().splitlines() or [""])[0].split(" See full TensorStore")[0]
        self.step, self.item = step, item
        self.reason = f"{type(error).__name__}: {first}"[:300]
        super().__init__(f"step {step}, item {item}: {self.reason}")


def warn(message: str) -> None:
    # stderr, not absl logging: the command lines silence Orbax's INFO/WARNING chatter.
    print(f"warning: {message}", file=sys.stderr, flush=True)


def read_all_arrays(item_dir: epath.Path) -> None:
    """Reads every stored chunk of an array item (its OCDBT key-value store) synchronously.

    Why: when a data file is missing or truncated, Orbax's restore fails from inside its asyncio
    loop and TensorStore's pending reads then print one 'Event loop is closed' traceback each.
    Reading here first turns that into one clean error (the OS cache makes Orbax's read cheap).
    """
    base = str(item_dir) if "://" in str(item_dir) else f"file://{item_dir}"
    kv = ts.KvStore.open({"driver": "ocdbt", "base": base + "/"}).result()
    keys = kv.list().result()
    if not keys:
        raise FileNotFoundError(f"no array data in {item_dir} (manifest.ocdbt missing?)")
    for future in [kv.read(k) for k in keys]:
        future.result()
    json.loads((item_dir / "_METADATA").read_text())  # the tree structure Orbax restores
    # Orbax parses these while its array reads are in flight (same noise when they are broken).
    metadatas = item_dir / "array_metadatas"
    for path in metadatas.iterdir() if metadatas.is_dir() else []:
        json.loads(path.read_text())


def restore_item(manager: ocp.CheckpointManager, step: int, item: str, arg, precheck=True):
    """One item of one step; any failure (missing or truncated files, bad JSON, a step deleted
    under us) becomes Unreadable naming the step and the item. precheck: read the arrays
    first (False where the caller has just done so)."""
    try:
        if precheck and isinstance(arg, ocp.args.StandardRestore):
            read_all_arrays(epath.Path(manager.directory) / str(step) / item)
        return getattr(manager.restore(step, args=ocp.args.Composite(**{item: arg})), item)
    except Exception as e:  # Orbax, TensorStore, Grain and json raise many types
        raise Unreadable(step, item, e) from e
