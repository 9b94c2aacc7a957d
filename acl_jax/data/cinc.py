"""Reader for the PhysioNet/CinC Challenge 2020/2021 12-lead data: `<name>.hea` + `<name>.mat`
(MATLAB "val", int16 (leads, samples)) anywhere under `src` (the real data nests them as
training/<source>/g1/...). Gains and baselines come from the .hea, so values are in mV exactly as
`wfdb.rdsamp` returns them.

Header comments give `#Age:`, `#Sex:` and `#Dx:` (comma-separated SNOMED CT codes). The source
database follows from the name's prefix (see `PREFIX_DATASET`). CinC publishes no patient ids, so
`patient` is "" and the splitter treats every record as its own patient (some CPSC/Georgia
patients may have several records: splits by record can then leak a patient across splits).

Labels: "snomed" = every Dx code; "snomed_scored" = the 27 classes scored in 2020 with
equivalent pairs merged (acl_jax.data.snomed). Codes are stored with likelihood 100.0.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import scipy.io

from acl_jax.data import snomed
from acl_jax.data.sources import BadRecord, LabelFileError, SourceRecord
from acl_jax.data.wfdb_folder import (
    digital_to_mv,
    parse_age,
    parse_dx,
    parse_sex,
    read_header,
)

TASKS: tuple[str, ...] = ("snomed", "snomed_scored")

PREFIX_DATASET = {
    "A": "cpsc2018",
    "Q": "cpsc_extra",
    "E": "georgia",
    "JS": "chapman_ningbo",
    "HR": "ptbxl",
    "S": "ptb",
    "I": "incart",
}
_PREFIX = re.compile(r"^([A-Za-z]+)\d")


def dataset_of(name: str) -> str:
    """Source database of a CinC record name: "JS00001" -> "chapman_ningbo"; unknown -> "cinc"."""
    m = _PREFIX.match(name)
    return PREFIX_DATASET.get(m.group(1).upper(), "cinc") if m else "cinc"


def list_records(src: Path, limit: int | None = None) -> list[SourceRecord]:
    """Every `*.hea` under `src` (recursively), sorted by record name.

    A header that cannot be parsed is still listed (without labels): `load_signal` then raises
    BadRecord for it, so the run records why it was skipped. Two records with the same name
    (e.g. the 2020 and 2021 downloads side by side) raise LabelFileError.
    """
    src = Path(src)
    if not src.is_dir():
        raise LabelFileError(f"{src}: not a folder; pass the CinC data folder (.hea/.mat files)")
    heas = sorted(src.rglob("*.hea"), key=lambda p: (p.stem, str(p)))
    if not heas:
        raise LabelFileError(f"{src}: no .hea headers under it; pass the CinC data folder")
    for a, b in zip(heas, heas[1:]):
        if a.stem == b.stem:  # ids would collide, and one copy would leak across splits
            raise LabelFileError(
                f"record {a.stem} is in {src} twice ({a.parent} and "
                f"{b.parent}); keep one copy of the data under {src}"
            )
    out = []
    for hea in heas[:limit] if limit is not None else heas:
        try:
            comments = read_header(hea).comments
        except BadRecord:
            comments = {}
        dx = parse_dx(comments.get("dx"))
        dataset = dataset_of(hea.stem)
        out.append(
            SourceRecord(
                id=f"{dataset}/{hea.stem}",
                patient="",
                dataset=dataset,
                path=str(hea.with_suffix("")),
                age=parse_age(comments.get("age")),
                sex=parse_sex(comments.get("sex")),
                codes={c: 100.0 for c in dx},
                labels={"snomed": dx, "snomed_scored": snomed.scored_labels(dx)},
            )
        )
    return out


def load_signal(rec: SourceRecord) -> tuple[np.ndarray, list[str], float]:
    """(signal (T, n_leads) float64 mV, lead names, fs); BadRecord naming the file if unusable."""
    hdr = read_header(Path(rec.path + ".hea"))
    mat = Path(rec.path).parent / hdr.files[0]
    if mat.suffix.lower() != ".mat":
        raise BadRecord(
            f"{hdr.path}: signals are in {mat.name}, not a .mat file; read this "
            f"folder with the wfdb reader instead"
        )
    if not mat.is_file():
        raise BadRecord(f"{mat}: signal file missing")
    try:
        val = scipy.io.loadmat(mat)["val"]
    except Exception as e:  # scipy raises ValueError, TypeError, MatReadError, ... on damage
        raise BadRecord(f"{mat}: cannot read MATLAB file ({type(e).__name__}: {e})") from e
    if val.ndim != 2 or not np.issubdtype(val.dtype, np.integer):
        raise BadRecord(f"{mat}: 'val' is {val.dtype} {val.shape}, expected int (leads, samples)")
    if val.shape[0] != hdr.n_sig or (hdr.sig_len is not None and val.shape[1] != hdr.sig_len):
        raise BadRecord(
            f"{mat}: 'val' has shape {val.shape} but {hdr.path.name} declares "
            f"{hdr.n_sig} leads x {hdr.sig_len} samples"
        )
    return digital_to_mv(val.T, hdr), list(hdr.names), hdr.fs
