"""What every dataset reader yields: a `SourceRecord` per ECG, and `BadRecord` for one that
cannot be used. Readers live in ptbxl.py, cinc.py and wfdb_folder.py; acl_jax.prepare turns
their output into shards without knowing which dataset it came from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


class BadRecord(Exception):
    """One record cannot be used; the message is the reason stored in the manifest."""


class LabelFileError(Exception):
    """A label file (e.g. ptbxl_database.csv) is missing or malformed: the whole run stops."""


@dataclass(frozen=True)
class SourceRecord:
    id: str  # "<dataset>/<source id>", unique across datasets
    patient: str  # "" when unknown (splits then treat each record as its own patient)
    dataset: str
    path: str  # WFDB record path without extension
    fold: int = -1
    age: float = math.nan
    sex: str = ""  # "M", "F" or ""
    codes: dict[str, float] = field(default_factory=dict)
    labels: dict[str, list[str]] = field(default_factory=dict)
