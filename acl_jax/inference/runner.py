"""Prepared records -> per-record encoder features, on all devices, with eval's window logic.

Every device runs `device_batch` windows per step, whatever the number of devices: a window's
features then come out bit-identical on 1 and on 8 devices (XLA may round differently for
another per-device batch shape), and equal to eval's when eval runs the same per-device batch
(`--batch-size` / device count); otherwise they agree to float32 rounding.

Records stream in chunks: each chunk's windows (`pipeline.eval_windows`, eval's sliding
windows) are cut and batched with `windows.crop_example`/`collate`, run through eval's sharded
inference forward, and averaged per record in float64 exactly as
`acl_jax.eval.features.record_outputs` does. Padding rows (to fill the last batch to a
multiple of the device count) repeat a real window and are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from acl_jax.data import pipeline
from acl_jax.data.windows import collate, crop_example
from acl_jax.eval import features
from acl_jax.leads import LEADS
from acl_jax.train.step import make_mesh, place_model, shard_batch

CHUNK_RECORDS = 512


def _record_dict(rec) -> dict:
    return {
        "id": rec.id,
        "patient": "",
        "signal": rec.signal,
        "lead_mask": rec.lead_mask,
        "rpeaks": rec.rpeaks,
    }


def _embed_chunk(model, recs: list, fn, view, mesh, bsz: int) -> np.ndarray:
    """(len(recs), D) float32 mean window features of prepared records."""
    lengths = np.array([r.signal.shape[1] for r in recs], np.int64)
    table = pipeline.eval_windows(lengths, model.window, model.stride)
    dicts = [_record_dict(r) for r in recs]
    sums = np.zeros((len(recs), model.dim), np.float64)
    counts = np.zeros(len(recs), np.int64)
    for lo in range(0, len(table), bsz):
        rows = table[lo : lo + bsz]
        n = len(rows)
        rows = np.concatenate([rows, np.repeat(rows[:1], bsz - n, axis=0)])
        batch = collate(
            [crop_example(dicts[r], r, s, model.window, model.max_beats) for r, s in rows],
            model.window,
        )
        out = fn(view, shard_batch({k: batch[k] for k in features.MODEL_KEYS}, mesh))
        out = np.asarray(out)[:n]
        np.add.at(sums, rows[:n, 0], out)
        np.add.at(counts, rows[:n, 0], 1)
    return (sums / counts[:, None]).astype(np.float32)


def embed_stream(model, stream: Iterable, device_batch: int, devices, bar):
    """Embeddings of (Prepared | None, id, reason) items (acl_jax.inference.model), run in
    batches of `device_batch` windows per device."""
    from acl_jax.inference.model import Embeddings

    mesh = make_mesh(devices)
    place_model(model.encoder, mesh)
    view = features.inference_view(model.encoder)
    fn = features.sharded(features.encoder_features, mesh)
    if device_batch < 1:
        raise ValueError(f"device_batch must be >= 1, got {device_batch}")
    # A fixed per-device shape: XLA's float results can depend on the batch shape a device
    # runs (last-bit differences), so the device count must not change it.
    bsz = device_batch * mesh.devices.size
    ids, outs, skipped, absent, chunk = [], [], [], {}, []

    def flush():
        if chunk:
            outs.append(_embed_chunk(model, chunk, fn, view, mesh, bsz))
            chunk.clear()

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
    flush()
    feats = np.concatenate(outs) if outs else np.zeros((0, model.dim), np.float32)
    absent = {k: absent[k] for k in LEADS if k in absent}
    return Embeddings(ids, feats, skipped, absent)
