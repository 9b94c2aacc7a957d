"""Host -> device feeding of the training loop: groups of batches read ahead, with the data
iterator state that belongs to them.

The loop asks for the group of its next call while the current call runs on the device (JAX
dispatch is asynchronous), so the Grain read, the stacking and the host -> device transfer of
group g + 1 overlap the compute of group g. The Grain iterator is then one group ahead of the
model; a checkpoint must store the iterator state right after the group the saved step
consumed, not the live state, or a resumed run would skip the group read ahead. Each group
therefore carries a snapshot of the state taken just after its batches were read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import jax
import numpy as np

from acl_jax.train.step import shard_batches


class IteratorState:
    """A Grain iterator state frozen at one point of the stream: what Orbax's Grain handler
    (`grain.checkpoint.CheckpointSave`) writes for it is what it writes for the live iterator
    at that point (the handler takes `get_state()` as JSON bytes from non-Grain objects)."""

    def __init__(self, state: dict):
        self._json = json.dumps(state, indent=4)  # the handler's own format for an iterator

    def get_state(self) -> bytes:
        return self._json.encode()


@dataclass(frozen=True)
class Group:
    """The batches of one compiled call: steps first_step .. first_step + n - 1."""

    first_step: int
    n: int
    batches: dict[str, jax.Array]  # each (n, global batch, ...), batch axis split over "data"
    data_state: IteratorState  # the iterator just after these n batches


class Feed:
    """Reads n per-process batches from `data_iter`, stacks them (n, b, ...) and places them on
    `mesh` as one group; `prepare` hands a group over as soon as it is placed, so the caller can
    request group g + 1 before it blocks on anything of group g."""

    def __init__(self, data_iter, mesh: jax.sharding.Mesh):
        self.data_iter, self.mesh = data_iter, mesh

    def prepare(self, first_step: int, n: int) -> Group:
        hosts = [next(self.data_iter) for _ in range(n)]
        state = IteratorState(self.data_iter.get_state())
        stacked = {k: np.stack([h[k] for h in hosts]) for k in hosts[0]}
        return Group(first_step, n, shard_batches(stacked, self.mesh), state)


def call_lengths(start: int, end: int, per_call: int) -> list[tuple[int, int]]:
    """(first step, number of steps) of each call taking steps start + 1 .. end, calls ending on
    multiples of `per_call` (where logs and checkpoints land); a start off that grid gets a
    shorter first call, an end off it a shorter last one."""
    out, step = [], start
    while step < end:
        n = min(per_call - step % per_call, end - step)
        out.append((step + 1, n))
        step += n
    return out
