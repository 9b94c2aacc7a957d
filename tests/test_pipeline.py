"""Grain pipelines over real ArrayRecord shards written by tests/shard_factory.py."""

import json

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from shard_factory import SPIKE_UV, synthetic_dir

from acl_jax.data import pipeline as pl
from acl_jax.data.record import decode
from acl_jax.data.windows import crop_start, window_rpeaks, window_starts

N_TRAIN, N_TEST = 24, 7
LENGTHS = [400, 150, 333]  # 150 < W: zero-padded
W, K = 200, 8


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("prepared")
    synthetic_dir(str(d), {"train": N_TRAIN, "test": N_TEST}, length=LENGTHS, num_shards=3)
    return str(d)


def _train(data_dir, **kw):
    args = dict(window=W, max_beats=K, batch_size=4, seed=0)
    return pl.train_dataset(data_dir, "train", **(args | kw))


def _take(it, n):
    return [next(it) for _ in range(n)]


def _assert_same(batches_a, batches_b):
    assert len(batches_a) == len(batches_b)
    for a, b in zip(batches_a, batches_b):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def _records(data_dir, split):
    src = grain.sources.ArrayRecordDataSource(pl.split_paths(data_dir, split))
    return [decode(src[i]) for i in range(len(src))]


def test_train_batch_shapes_and_dtypes(data_dir):
    b = next(iter(_train(data_dir)))
    expected = {
        "signal": ((4, 12, W), np.float32),
        "lead_mask": ((4, 12), np.float32),
        "rpeaks": ((4, K), np.int32),
        "patient": ((4,), np.int32),
        "record": ((4,), np.int32),
    }
    assert {k: (v.shape, v.dtype) for k, v in b.items()} == expected
    assert np.all((b["record"] >= 0) & (b["record"] < N_TRAIN))
    assert np.all(b["patient"] >= 0)


def test_deterministic_for_seed_and_seeds_differ(data_dir):
    a = _take(iter(_train(data_dir, seed=3)), 5)
    _assert_same(a, _take(iter(_train(data_dir, seed=3)), 5))
    c = _take(iter(_train(data_dir, seed=4)), 5)
    assert not all(np.array_equal(x["record"], y["record"]) for x, y in zip(a, c))


def test_epochs_reshuffle_and_cover_each_record_once(data_dir):
    per_epoch = N_TRAIN // 4
    recs = np.concatenate([b["record"] for b in _take(iter(_train(data_dir)), 3 * per_epoch)])
    epochs = recs.reshape(3, N_TRAIN)
    for e in epochs:
        assert sorted(e.tolist()) == list(range(N_TRAIN))
    assert not np.array_equal(epochs[0], epochs[1])
    assert not np.array_equal(epochs[1], epochs[2])


def test_records_subset_draws_only_those_records_each_epoch(data_dir):
    # Fine-tuning on a label fraction draws from its labelled records alone (acl_jax.eval).
    subset = np.array([2, 5, 6, 11, 17, 23, 19, 8])
    recs = np.concatenate([b["record"] for b in _take(iter(_train(data_dir, records=subset)), 6)])
    for epoch in recs.reshape(3, len(subset)):
        assert sorted(epoch.tolist()) == sorted(subset.tolist())
    # The default is the stream of every record: records=arange(N) gives the same batches.
    everything = np.arange(N_TRAIN)
    _assert_same(
        _take(iter(_train(data_dir)), 4), _take(iter(_train(data_dir, records=everything)), 4)
    )
    for bad in (np.array([], np.int64), np.array([0, N_TRAIN]), np.array([-1, 3])):
        with pytest.raises(ValueError, match=f"positions in \\[0, {N_TRAIN}\\)"):
            _train(data_dir, records=bad)


@pytest.mark.parametrize("process_count", [2, 3])
def test_process_slices_partition_the_global_stream(data_dir, process_count):
    # Unbatched view of each process's stream: process p holds global positions p, p + P, ...
    n_batches = 6
    single = _take(iter(_train(data_dir, batch_size=1)), n_batches * process_count)
    per_proc = [
        _take(
            iter(_train(data_dir, batch_size=1, process_index=p, process_count=process_count)),
            n_batches,
        )
        for p in range(process_count)
    ]
    interleaved = [per_proc[g % process_count][g // process_count] for g in range(len(single))]
    _assert_same(single, interleaved)  # same records AND same crops
    first_epoch = [
        int(b["record"][0]) for b in _take(iter(_train(data_dir, batch_size=1)), N_TRAIN)
    ]
    slices = [set(first_epoch[p::process_count]) for p in range(process_count)]
    assert sum(len(s) for s in slices) == N_TRAIN
    assert set().union(*slices) == set(range(N_TRAIN))


def test_bad_process_index_is_rejected(data_dir):
    with pytest.raises(ValueError, match="process_index 2"):
        _train(data_dir, process_index=2, process_count=2)


def test_resume_from_get_state_at_identical_batch(data_dir):
    it = iter(_train(data_dir, prefetch=2))
    _take(it, 3)
    state = it.get_state()
    expected = _take(it, 4)
    it2 = iter(_train(data_dir, prefetch=2))
    it2.set_state(state)
    _assert_same(expected, _take(it2, 4))


def test_resume_through_orbax_checkpoint_manager(data_dir, tmp_path):
    it = iter(_train(data_dir))
    _take(it, 5)
    with ocp.CheckpointManager(tmp_path / "ckpt") as mngr:
        mngr.save(5, args=ocp.args.Composite(data_iter=grain.checkpoint.CheckpointSave(it)))
        mngr.wait_until_finished()
    expected = _take(it, 3)
    it2 = iter(_train(data_dir))
    _take(it2, 1)  # a fresh iterator at another position must be moved by the restore
    with ocp.CheckpointManager(tmp_path / "ckpt") as mngr:
        assert mngr.latest_step() == 5
        mngr.restore(5, args=ocp.args.Composite(data_iter=grain.checkpoint.CheckpointRestore(it2)))
    _assert_same(expected, _take(it2, 3))


def test_worker_processes_give_the_same_batches(data_dir):
    expected = _take(iter(_train(data_dir)), 3)
    it = iter(_train(data_dir, num_workers=2))
    _assert_same(expected, _take(it, 3))
    del it


def test_crop_keeps_rpeaks_at_spikes(data_dir):
    spike_mv = SPIKE_UV / 1000.0
    n_checked = 0
    for b in _take(iter(_train(data_dir)), 12):
        for sig, mask, peaks in zip(b["signal"], b["lead_mask"], b["rpeaks"]):
            valid = peaks[peaks >= 0]
            assert np.all(np.diff(valid) > 0) and np.all(peaks[len(valid) :] == -1)
            for lead in np.flatnonzero(mask):
                np.testing.assert_array_equal(np.flatnonzero(sig[lead] == spike_mv), valid)
            n_checked += 1
    assert n_checked == 48


def test_short_records_are_zero_padded_with_peaks_kept(data_dir):
    records = _records(data_dir, "train")
    seen = 0
    for b in _take(iter(_train(data_dir)), 6):
        for sig, peaks, r in zip(b["signal"], b["rpeaks"], b["record"]):
            rec = records[r]
            n = rec["signal"].shape[1]
            if n >= W:
                continue
            np.testing.assert_array_equal(sig[:, :n], rec["signal"] / np.float32(1000))
            assert np.all(sig[:, n:] == 0)
            np.testing.assert_array_equal(peaks[peaks >= 0], rec["rpeaks"])
            seen += 1
    assert seen == N_TRAIN // len(LENGTHS)


def test_window_helpers():
    np.testing.assert_array_equal(window_starts(1000, 250, 250), [0, 250, 500, 750])
    np.testing.assert_array_equal(window_starts(1000, 250, 300), [0, 300, 600, 750])
    np.testing.assert_array_equal(window_starts(100, 250, 125), [0])
    assert crop_start(1000, 250, 0.0) == 0 and crop_start(1000, 250, 0.9999999) == 750
    assert crop_start(100, 250, 0.7) == 0
    peaks = window_rpeaks(np.array([5, 12, 30, 41, 90]), 10, 40, 2)
    np.testing.assert_array_equal(peaks, [2, 20])  # sorted, inside [10, 50), truncated to K
    np.testing.assert_array_equal(window_rpeaks(np.array([1]), 10, 40, 3), [-1, -1, -1])


def _eval(data_dir, **kw):
    args = dict(window=W, stride=100, max_beats=K, batch_size=4)
    return pl.eval_dataset(data_dir, "test", **(args | kw))


def test_eval_covers_every_window_once_with_padding_flagged(data_dir):
    starts = {400: [0, 100, 200], 150: [0], 333: [0, 100, 133]}
    records = _records(data_dir, "test")
    expected = [(r, s) for r, rec in enumerate(records) for s in starts[rec["signal"].shape[1]]]
    ds, total = _eval(data_dir)
    batches = list(ds)
    assert total == len(expected)
    assert len(batches) == -(-total // 4)
    valid = np.concatenate([b["valid"] for b in batches])
    assert valid.dtype == np.bool_ and valid.sum() == total and not valid[total:].any()
    got = [
        (int(r), int(s))
        for b in batches
        for r, s, v in zip(b["record"], b["window"], b["valid"])
        if v
    ]
    assert got == expected
    for b in batches:  # every row, padding included, is a real window of its record
        for sig, r, s in zip(b["signal"], b["record"], b["window"]):
            piece = records[r]["signal"][:, s : s + W] / np.float32(1000)
            np.testing.assert_array_equal(sig[:, : piece.shape[1]], piece)
            assert np.all(sig[:, piece.shape[1] :] == 0)


@pytest.mark.parametrize("process_count", [2, 3])
def test_eval_processes_lock_step_and_partition(data_dir, process_count):
    _, total = _eval(data_dir)
    runs = [
        list(_eval(data_dir, batch_size=2, process_index=p, process_count=process_count)[0])
        for p in range(process_count)
    ]
    assert len({len(r) for r in runs}) == 1
    pairs = [
        (int(r), int(s))
        for run in runs
        for b in run
        for r, s, v in zip(b["record"], b["window"], b["valid"])
        if v
    ]
    assert len(pairs) == len(set(pairs)) == total
    single = [
        (int(r), int(s))
        for b in _eval(data_dir)[0]
        for r, s, v in zip(b["record"], b["window"], b["valid"])
        if v
    ]
    assert set(pairs) == set(single)


def test_split_metadata_in_split_order(data_dir):
    meta = pl.split_metadata(data_dir, "test")
    assert [m["id"] for m in meta] == sorted(m["id"] for m in meta)
    assert len(meta) == N_TEST and "signal" not in meta[0]
    assert set(meta[0]) >= {"id", "patient", "fold", "age", "sex", "codes", "labels"}
    assert meta[0]["labels"]["superdiagnostic"][0] in {"NORM", "MI"}


def test_missing_or_corrupt_manifest_and_split_errors(data_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="acl_jax.prepare") as e:
        pl.read_manifest(str(tmp_path))
    assert str(tmp_path) in str(e.value)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt.*acl_jax.prepare"):
        pl.read_manifest(str(tmp_path))
    with pytest.raises(ValueError, match=r"'val'.*available: \['test', 'train'\]"):
        pl.split_paths(data_dir, "val")
    (tmp_path / "manifest.json").write_text(json.dumps({"splits": {"train": {"shards": ["gone"]}}}))
    with pytest.raises(FileNotFoundError, match="gone"):
        pl.split_paths(str(tmp_path), "train")


def test_to_global_shards_over_the_data_axis(data_dir):
    mesh = jax.make_mesh((jax.device_count(),), ("data",))
    b = next(iter(_train(data_dir, batch_size=jax.device_count())))
    g = pl.to_global(b, mesh)
    assert set(g) == set(b)
    for k in b:
        assert g[k].shape == b[k].shape and g[k].dtype == b[k].dtype
        assert g[k].sharding.spec == jax.P("data")
        np.testing.assert_array_equal(np.asarray(g[k]), b[k])
    assert len(g["signal"].addressable_shards) == jax.device_count()
