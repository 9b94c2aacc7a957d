"""Checks of a training config against the prepared data, before anything is compiled.

The config alone cannot know these limits (acl_jax.config checks each field's own range):
the global batch must split over the devices and fit in the train split, and the window must
fit in the records (a longer one would be zero-padded on every example).
"""

from __future__ import annotations

import grain
import numpy as np

from acl_jax.config import Config
from acl_jax.data import pipeline
from acl_jax.data.record import decode

RECORDS_CHECKED = 64  # records whose length is read (spread over the split): a few ms


def check_data(cfg: Config, manifest: dict, n_devices: int) -> None:
    """Raises ValueError (one line: the setting, the numbers and the fix) if `cfg.data` does
    not fit the prepared data in `cfg.data.dir` (whose manifest is `manifest`)."""
    d = cfg.data
    if d.batch_size % n_devices:
        raise ValueError(
            f"--config.data.batch_size={d.batch_size} must be a multiple of "
            f"the device count {n_devices}"
        )
    split = manifest["splits"].get(d.train_split)
    if split is None:
        raise ValueError(
            f"data.train_split={d.train_split!r} is not in {d.dir}/manifest.json; "
            f"available: {sorted(manifest['splits'])} (--config.data.train_split)"
        )
    n = int(split["num_records"])
    if n == 0:
        raise ValueError(f"split {d.train_split!r} in {d.dir} has no records")
    if d.batch_size > n:
        fit = n - n % n_devices
        raise ValueError(
            f"data.batch_size={d.batch_size} is larger than the {n} records of split "
            f"{d.train_split!r} in {d.dir}: every batch would repeat records; set "
            f"--config.data.batch_size to at most {fit} (a multiple of {n_devices} devices)"
        )
    longest, checked = longest_record(d.dir, d.train_split, n)
    if d.window > longest:
        fs = manifest.get("fs", "?")
        raise ValueError(
            f"data.window={d.window} samples is longer than every record of split "
            f"{d.train_split!r} in {d.dir} (the longest of {checked} read is {longest} samples "
            f"at {fs} Hz): every window would be mostly zero padding; set "
            f"--config.data.window to at most {longest}"
        )


def longest_record(data_dir: str, split: str, num_records: int) -> tuple[int, int]:
    """(longest length in samples, records read) over up to RECORDS_CHECKED records spread
    evenly over the split."""
    source = grain.sources.ArrayRecordDataSource(pipeline.split_paths(data_dir, split))
    k = min(RECORDS_CHECKED, num_records)
    indices = sorted({int(i) for i in np.linspace(0, num_records - 1, k)})
    lengths = [decode(raw)["signal"].shape[1] for raw in source.__getitems__(indices)]
    return max(lengths), len(indices)
