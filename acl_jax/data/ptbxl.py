"""Reader for PTB-XL (Wagner et al. 2020): ptbxl_database.csv, scp_statements.csv and the WFDB
records in records100/ (100 Hz, `filename_lr`) and/or records500/ (500 Hz, `filename_hr`).

Task labels follow the benchmark of Strodthoff et al. 2020 (ecg_ptbxl_benchmarking,
utils.compute_label_aggregations), with no likelihood threshold, as there:
  all             every SCP code of the record (71 classes)
  diagnostic      codes with diagnostic == 1 (44)
  subdiagnostic   their diagnostic_subclass (23)
  superdiagnostic their diagnostic_class (5)
  form            codes with form == 1 (19)
  rhythm          codes with rhythm == 1 (12)
A record without a label in a task gets an empty list for it.

Ages above 89 are stored as 300 in PTB-XL (HIPAA de-identification); they become 90, the lower
bound of the true age, so that age stays a plausible number for models and statistics.
"""

from __future__ import annotations

import ast
import csv
import math
from pathlib import Path

import numpy as np

from acl_jax.data.sources import BadRecord, LabelFileError, SourceRecord
from acl_jax.data.wfdb_folder import read_header, read_signal

TASKS: tuple[str, ...] = ("all", "diagnostic", "subdiagnostic", "superdiagnostic", "form", "rhythm")
DATABASE = "ptbxl_database.csv"
STATEMENTS = "scp_statements.csv"
DB_COLUMNS = (
    "ecg_id",
    "patient_id",
    "age",
    "sex",
    "scp_codes",
    "strat_fold",
    "filename_lr",
    "filename_hr",
)
STATEMENT_COLUMNS = ("diagnostic", "form", "rhythm", "diagnostic_class", "diagnostic_subclass")
AGE_OVER_89 = 300.0
AGE_OVER_89_AS = 90.0
_FIX = "re-download it from https://physionet.org/content/ptb-xl/ (the files must be unmodified)"


def _read_csv(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    if not path.is_file():
        raise LabelFileError(
            f"{path}: missing; pass the PTB-XL root folder (the one holding "
            f"{DATABASE}, {STATEMENTS} and records100/) or {_FIX}"
        )
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            columns = reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise LabelFileError(f"{path}: unreadable ({e}); {_FIX}") from e
    missing = [c for c in required if c not in columns]
    if missing:
        raise LabelFileError(f"{path}: missing columns {missing} (has {columns[:8]}...); {_FIX}")
    return rows


def _flag(value: str) -> bool:
    try:
        return float(value) == 1.0
    except ValueError:
        return False


def read_statements(src: Path) -> dict[str, dict[str, str | bool]]:
    """scp_statements.csv as {code: {diagnostic, form, rhythm (bool), diagnostic_class,
    diagnostic_subclass (str, "" when none)}}."""
    path = Path(src) / STATEMENTS
    rows = _read_csv(path, STATEMENT_COLUMNS)
    first = next(iter(rows[0])) if rows else ""  # the unnamed index column holds the code
    table = {}
    for row in rows:
        table[row[first].strip()] = {
            "diagnostic": _flag(row["diagnostic"]),
            "form": _flag(row["form"]),
            "rhythm": _flag(row["rhythm"]),
            "diagnostic_class": row["diagnostic_class"].strip(),
            "diagnostic_subclass": row["diagnostic_subclass"].strip(),
        }
    if not table:
        raise LabelFileError(f"{path}: no statements; {_FIX}")
    return table


def task_labels(codes: dict[str, float], statements: dict) -> dict[str, list[str]]:
    """{task: sorted labels} for one record's SCP codes (see the module docstring)."""
    diag = [c for c in codes if c in statements and statements[c]["diagnostic"]]
    pick = lambda key: sorted({c for c in codes if c in statements and statements[c][key]})
    return {
        "all": sorted(codes),
        "diagnostic": sorted(set(diag)),
        "subdiagnostic": sorted({s for c in diag if (s := statements[c]["diagnostic_subclass"])}),
        "superdiagnostic": sorted({s for c in diag if (s := statements[c]["diagnostic_class"])}),
        "form": pick("form"),
        "rhythm": pick("rhythm"),
    }


def _parse_codes(text: str, path: Path, ecg_id: str) -> dict[str, float]:
    try:
        codes = ast.literal_eval(text)
        if not isinstance(codes, dict):
            raise ValueError("not a dict")
        return {str(k): float(v) for k, v in codes.items()}
    except (ValueError, SyntaxError, TypeError) as e:
        raise LabelFileError(
            f"{path}: ecg_id {ecg_id}: unparsable scp_codes {text[:60]!r} ({e}); {_FIX}"
        ) from e


def _age(text: str) -> float:
    try:
        age = float(text)
    except ValueError:
        return math.nan
    return AGE_OVER_89_AS if age == AGE_OVER_89 else age


def list_records(
    src: Path, limit: int | None = None, prefer_hr: bool = False
) -> list[SourceRecord]:
    """PTB-XL records in ecg_id order (the first `limit` when given).

    prefer_hr: read the 500 Hz records500/ files when that folder exists (use it when the target
    rate is above 100 Hz); otherwise, or when records500/ is absent, the 100 Hz records100/.
    Files missing on disk are listed anyway; `load_signal` raises BadRecord for them.
    """
    src = Path(src)
    statements = read_statements(src)
    db = src / DATABASE
    rows = _read_csv(db, DB_COLUMNS)
    column = "filename_hr" if prefer_hr and (src / "records500").is_dir() else "filename_lr"
    out = []
    for row in rows:
        try:
            ecg_id = int(float(row["ecg_id"]))
            fold = int(float(row["strat_fold"]))
            patient = str(int(float(row["patient_id"])))
        except ValueError as e:
            raise LabelFileError(
                f"{db}: row {row['ecg_id']!r}: bad ecg_id, strat_fold or patient_id ({e}); {_FIX}"
            ) from e
        codes = _parse_codes(row["scp_codes"], db, row["ecg_id"])
        out.append(
            SourceRecord(
                id=f"ptbxl/{ecg_id:05d}",
                patient=patient,
                dataset="ptbxl",
                path=str(src / row[column]),
                fold=fold,
                age=_age(row["age"]),
                sex={"0": "M", "1": "F"}.get(row["sex"].strip().split(".")[0], ""),
                codes=codes,
                labels=task_labels(codes, statements),
            )
        )
    out.sort(key=lambda r: r.id)
    return out[:limit] if limit is not None else out


def load_signal(rec: SourceRecord) -> tuple[np.ndarray, list[str], float]:
    """(signal (T, 12) float64 mV, lead names as in the header, fs); BadRecord if unusable."""
    hea = Path(rec.path + ".hea")
    if not hea.is_file():
        raise BadRecord(
            f"{hea}: missing (listed in {DATABASE}); download records100/ or records500/ completely"
        )
    hdr = read_header(hea)
    sig, names = read_signal(hdr)
    return sig, names, hdr.fs
