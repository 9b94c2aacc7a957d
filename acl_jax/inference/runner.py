"""Prepared records -> per-record encoder features, on all devices, with eval's window logic.

Every device runs `device_batch` windows per step, whatever the number of devices: a window's
features then come out bit-identical on 1 and on 8 devices (XLA may round differently for
another per-device batch shape), and equal to eval's when eval runs the same per-device batch
(`--batch-size` / device count); otherwise they agree to float32 rounding.

Records stream in chunks. A chunk's windows (`pipeline.eval_windows`, eval's sliding windows)
are cut and batched with `windows.crop_example`/`collate` and dispatched to eval's sharded
inference forward; its results are collected only after the next chunk is dispatched, so the
devices work while the host reads records (JAX dispatches asynchronously). Window features are
averaged per record in float64 exactly as `acl_jax.eval.features.record_outputs` does. Padding
rows (filling the last batch) repeat a real window and are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from acl_jax.data import pipeline
from acl_jax.data.windows import collate, crop_example
from acl_jax.eval import features
from acl_jax.leads import LEADS
from acl_jax.train.step import make_mesh, place_model, shard_batch

CHUNK_RECORDS = 128  # records per dispatch: small enough that reading overlaps early


def _record_dict(rec) -> dict:
    return {
        "id": rec.id,
        "patient": "",
        "signal": rec.signal,
        "lead_mask": rec.lead_mask,
        "rpeaks": rec.rpeaks,
    }


def _dispatch_chunk(model, recs: list, fn, view, mesh, bsz: int) -> list:
    """Starts the encoder on every window of `recs` without waiting for it: [(out (bsz, D)
    device array, rows (bsz, 2) (record, start), n real rows)]. XLA runs while the caller
    reads the next records (JAX dispatches asynchronously)."""
    lengths = np.array([r.signal.shape[1] for r in recs], np.int64)
    table = pipeline.eval_windows(lengths, model.window, model.stride)
    dicts = [_record_dict(r) for r in recs]
    pending = []
    for lo in range(0, len(table), bsz):
        rows = table[lo : lo + bsz]
        n = len(rows)
        rows = np.concatenate([rows, np.repeat(rows[:1], bsz - n, axis=0)])
        batch = collate(
            [crop_example(dicts[r], r, s, model.window, model.max_beats) for r, s in rows],
            model.window,
        )
        out = fn(view, shard_batch({k: batch[k] for k in features.MODEL_KEYS}, mesh))
        pending.append((out, rows, n))
    return pending


def _collect_chunk(pending: list, num_records: int, dim: int, per_window=None) -> np.ndarray:
    """(num_records, D) float32: the mean of each record's window features (float64 sums, as
    acl_jax.eval.features.record_outputs); with `per_window` ((n, D) -> (n, dim)), the mean
    of per_window(window features) instead."""
    sums = np.zeros((num_records, dim), np.float64)
    counts = np.zeros(num_records, np.int64)
    for out, rows, n in pending:
        out = np.asarray(out)[:n]
        np.add.at(sums, rows[:n, 0], per_window(out) if per_window else out)
        np.add.at(counts, rows[:n, 0], 1)
    return (sums / counts[:, None]).astype(np.float32)


def embed_stream(
    model, stream: Iterable, device_batch: int, devices, bar, per_window=None, forward=None
):
    """Embeddings of (Prepared | None, id, reason) items (acl_jax.inference.model), run in
    batches of `device_batch` windows per device. per_window: (callable (n, D) -> (n, K), K):
    records get the mean of its outputs over their windows instead of their features.
    forward: (module, features.Forward, K): run this module and forward on the devices in
    place of the encoder's features (a HUG head: encoder + head, (b, K) probabilities)."""
    from acl_jax.inference.model import Embeddings

    if device_batch < 1:
        raise ValueError(f"device_batch must be >= 1, got {device_batch}")
    module, forward_fn, dim = forward or (model.encoder, features.encoder_features, model.dim)
    mesh = make_mesh(devices)
    place_model(module, mesh)
    view = features.inference_view(module)
    fn = features.sharded(forward_fn, mesh)
    # A fixed per-device shape: XLA's float results can depend on the batch shape a device
    # runs (last-bit differences), so the device count must not change it.
    bsz = device_batch * mesh.devices.size
    fn_window, dim = per_window if per_window else (None, dim)
    ids, outs, skipped, absent, chunk = [], [], [], {}, []
    in_flight: list = []  # (pending, num_records) of the chunk the devices are working on

    def flush(final: bool = False):
        # Collect the previous chunk only after the next one is dispatched: the devices stay
        # busy while the host reads and prepares records.
        if chunk:
            in_flight.append((_dispatch_chunk(model, chunk, fn, view, mesh, bsz), len(chunk)))
            chunk.clear()
        while len(in_flight) > (0 if final else 1):
            pending, num = in_flight.pop(0)
            outs.append(_collect_chunk(pending, num, dim, fn_window))

    for rec, rid, reason in stream:
        if bar is not None:
            bar.update(1)
        if rec is None:
            skipped.append((rid, reason))
            continue
        ids.append(rid)
        for i in np.flatnonzero(rec.lead_mask == 0):
            absent[LEADS[i]] = absent.get(LEADS[i], 0) + 1
        chunk.append(rec)
        if len(chunk) >= CHUNK_RECORDS:
            flush()
    flush(final=True)
    feats = np.concatenate(outs) if outs else np.zeros((0, dim), np.float32)
    absent = {k: absent[k] for k in LEADS if k in absent}
    return Embeddings(ids, feats, skipped, absent)
