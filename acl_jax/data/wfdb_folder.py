"""Reader for any folder of WFDB records, plus the WFDB header/signal reading the other readers
share (ptbxl.py and cinc.py).

Headers are parsed here rather than with `wfdb.rdheader` because that costs about 2 ms per header
(pandas tables), which alone would be a minute of a PTB-XL or CinC preparation; the common case
(format 16, one signal file, one sample per frame) is read with one `np.fromfile`, and everything
else falls back to `wfdb.rdrecord`. Physical values follow wfdb-python exactly:
(digital - baseline) / gain in float64, a missing gain meaning 200, baseline defaulting to the ADC
zero, and the invalid-sample value -32768 becoming NaN. A header value no real recording has (an
explicit gain of 0, which WFDB would read as 200 and so rescale the lead, a negative or non-finite
gain, an ADC resolution outside 0-32 bits, a negative length) makes the record a BadRecord.

Folder layout: a RECORDS file (one record path per line, relative to the folder; lines ending
in "/" name sub-folders with their own RECORDS) if present, else every `**/*.hea`. Record ids are
"wfdb/<relative record path>"; there are no patient ids, so each record is its own patient. Labels
are the header's `#Dx:` codes (task "dx"; an empty list when the header has none).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from acl_jax.data.sources import BadRecord, LabelFileError, SourceRecord

TASKS: tuple[str, ...] = ("dx",)

# Physical units -> factor to millivolts.
UNITS_TO_MV = {"mv": 1.0, "uv": 1e-3, "\u00b5v": 1e-3, "\u03bcv": 1e-3, "v": 1e3}
INVALID_FMT16 = -32768


@dataclass(frozen=True)
class Header:
    """The parts of a WFDB header the readers use. Per-signal lists have length n_sig."""

    path: Path  # the .hea file
    n_sig: int
    fs: float
    sig_len: int | None
    files: list[str]
    fmts: list[str]  # format with its modifiers, e.g. "16", "16x1+24", "212"
    gains: list[float]
    baselines: list[int]
    units: list[str]
    names: list[str]
    comments: dict[str, str]  # "#Key: value" comment lines, keys lower-case
    multi_segment: bool = False


def read_header(hea: Path) -> Header:
    """Parses a .hea file; raises BadRecord naming the file for anything unreadable."""
    try:
        text = hea.read_text(errors="replace")
    except OSError as e:
        raise BadRecord(f"{hea}: cannot read header ({e.strerror or e})") from e
    lines = [ln.strip() for ln in text.splitlines()]
    comments = {}
    for ln in lines:
        if ln.startswith("#") and ":" in ln:
            key, value = ln[1:].split(":", 1)
            comments[key.strip().lower()] = value.strip()
    fields = [ln.split("#", 1)[0].split() for ln in lines if ln and not ln.startswith("#")]
    if not fields:
        raise BadRecord(f"{hea}: empty header")
    rec, sig_lines = fields[0], fields[1:]
    if len(rec) < 2 or not rec[1].isdigit():
        raise BadRecord(f"{hea}: record line {' '.join(rec)!r} lacks the number of signals")
    n_sig = int(rec[1])
    if n_sig == 0:
        raise BadRecord(f"{hea}: header declares no signals")
    if len(rec) < 3:
        # WFDB would assume 250 Hz; a guessed rate silently corrupts every time axis.
        raise BadRecord(f"{hea}: no sampling rate in the record line")
    try:
        fs = float(rec[2].split("/")[0].split("(")[0])
        sig_len = int(rec[3]) if len(rec) > 3 else None
    except ValueError as e:
        raise BadRecord(f"{hea}: unparsable record line {' '.join(rec)!r}") from e
    if not math.isfinite(fs) or fs <= 0:
        raise BadRecord(f"{hea}: sampling rate {rec[2]!r} is not positive")
    if sig_len is not None and sig_len < 0:
        raise BadRecord(f"{hea}: negative signal length {sig_len} in the record line")
    multi = "/" in rec[0]
    if multi:  # segment lines, not signal lines: leave them to wfdb
        sig_lines = []
    elif len(sig_lines) != n_sig:
        raise BadRecord(f"{hea}: header declares {n_sig} signals but lists {len(sig_lines)}")
    files, fmts, gains, baselines, units, names = [], [], [], [], [], []
    for i, s in enumerate(sig_lines):
        try:
            gain, baseline, unit = _parse_gain(s)
        except ValueError as e:
            raise BadRecord(f"{hea}: unparsable signal line {i + 1}: {' '.join(s)!r}") from e
        _check_signal_line(hea, i, s, gain)
        files.append(s[0])
        fmts.append(s[1])
        gains.append(gain)
        baselines.append(baseline)
        units.append(unit)
        names.append(" ".join(s[8:]) if len(s) > 8 else f"ch{i + 1}")
    return Header(
        hea, n_sig, fs, sig_len, files, fmts, gains, baselines, units, names, comments, multi
    )


def _parse_gain(s: list[str]) -> tuple[float, int, str]:
    """(gain, baseline, units) of a split line "file fmt gain(baseline)/units adcres adczero"."""
    if len(s) < 2:
        raise ValueError("no format field")
    gain, baseline, unit = 200.0, None, "mV"
    if len(s) > 2:
        g = s[2]
        if "/" in g:
            g, unit = g.split("/", 1)
        if "(" in g:
            g, b = g.rstrip(")").split("(")
            baseline = int(b)
        gain = float(g)  # WFDB reads 0 as 200: refused in _check_signal_line
    if baseline is None:
        baseline = int(s[4]) if len(s) > 4 else 0  # WFDB: defaults to the ADC zero
    return gain, baseline, unit


def _check_signal_line(hea: Path, i: int, s: list[str], gain: float) -> None:
    """BadRecord for values no real recording has (they would scale the lead silently)."""
    where = f"{hea}: signal {i + 1}"
    if not math.isfinite(gain) or gain <= 0:
        raise BadRecord(
            f"{where}: gain {s[2]!r} is not a positive number of ADC units per physical unit "
            "(WFDB would read 0 as 200 and store the lead at the wrong scale)"
        )
    if len(s) > 3 and not (s[3].isdigit() and int(s[3]) <= 32):
        raise BadRecord(f"{where}: ADC resolution {s[3]!r} is not 0-32 bits")


def units_to_mv(path: Path, names: list[str], units: list[str]) -> np.ndarray:
    """(n_sig,) factors from each signal's units to mV; BadRecord for unknown units."""
    out = []
    for name, unit in zip(names, units):
        f = UNITS_TO_MV.get(unit.strip().lower())
        if f is None:
            raise BadRecord(f"{path}: lead {name!r} has unknown units {unit!r} (known: mV, uV, V)")
        out.append(f)
    return np.asarray(out)


def digital_to_mv(digital: np.ndarray, hdr: Header) -> np.ndarray:
    """(T, n_sig) int16 -> float64 mV, bit-identical to wfdb.rdsamp for mV signals."""
    p = digital.astype(np.float64)
    p -= np.asarray(hdr.baselines, np.float64)
    p /= np.asarray(hdr.gains, np.float64)
    p[digital == INVALID_FMT16] = np.nan
    scale = units_to_mv(hdr.path, hdr.names, hdr.units)
    if np.any(scale != 1.0):
        p *= scale
    return p


def _fast_path(hdr: Header) -> int | None:
    """Byte offset when all signals are interleaved format-16 in one file, else None."""
    if hdr.multi_segment or len(set(hdr.files)) != 1:
        return None
    offsets = set()
    for fmt in hdr.fmts:
        base, _, off = fmt.partition("+")
        if base not in ("16", "16x1"):
            return None
        offsets.add(int(off) if off.isdigit() else 0)
    return offsets.pop() if len(offsets) == 1 else None


def read_signal(hdr: Header) -> tuple[np.ndarray, list[str]]:
    """((T, n_sig) float64 mV, lead names) of the record `hdr` describes; BadRecord on any
    mismatch between header and signal file."""
    offset = _fast_path(hdr)
    if offset is None:
        return _read_with_wfdb(hdr)
    dat = hdr.path.parent / hdr.files[0]
    try:
        size = dat.stat().st_size
    except OSError as e:
        raise BadRecord(f"{dat}: signal file missing ({e.strerror or e})") from e
    frame = 2 * hdr.n_sig
    n = hdr.sig_len if hdr.sig_len is not None else (size - offset) // frame
    expected = offset + n * frame
    if size != expected:
        what = "truncated" if size < expected else "longer than the header says"
        raise BadRecord(
            f"{dat}: {what}: {size} bytes, header ({hdr.n_sig} signals x {n} "
            f"samples) needs {expected}"
        )
    digital = np.fromfile(dat, "<i2", count=n * hdr.n_sig, offset=offset)
    return digital_to_mv(digital.reshape(n, hdr.n_sig), hdr), list(hdr.names)


def _read_with_wfdb(hdr: Header) -> tuple[np.ndarray, list[str]]:
    import wfdb

    rec_path = str(hdr.path.with_suffix(""))
    try:
        rec = wfdb.rdrecord(rec_path, physical=True)
    except Exception as e:  # wfdb raises many types for damaged files
        raise BadRecord(f"{rec_path}: wfdb cannot read it ({type(e).__name__}: {e})") from e
    sig = np.asarray(rec.p_signal, np.float64)
    if sig.ndim != 2 or sig.shape[1] != hdr.n_sig:
        raise BadRecord(f"{rec_path}: {sig.shape} samples do not match {hdr.n_sig} signals")
    names = [str(n) for n in rec.sig_name]
    return sig * units_to_mv(hdr.path, names, [str(u) for u in rec.units]), names


def parse_age(text: str | None) -> float:
    """Age in years from e.g. "74"; NaN for "Unknown", "NaN", "" or None."""
    try:
        age = float(text) if text else math.nan
    except ValueError:
        return math.nan
    return age if math.isfinite(age) and age >= 0 else math.nan


def parse_sex(text: str | None) -> str:
    """Sex "M" for "Male"/"M", "F" for "Female"/"F", else ""."""
    t = (text or "").strip().lower()
    return {"male": "M", "m": "M", "female": "F", "f": "F"}.get(t, "")


def parse_dx(text: str | None) -> list[str]:
    """Sorted unique codes of a comma-separated list such as "164889003,59118001"."""
    return sorted({c.strip() for c in (text or "").split(",") if c.strip()})


def _records_file_paths(folder: Path, prefix: str = "") -> list[str]:
    paths = []
    for line in (folder / "RECORDS").read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        if line.endswith("/") and (folder / line / "RECORDS").is_file():
            paths += _records_file_paths(folder / line, prefix + line)
        else:
            paths.append(prefix + line)
    return paths


def list_records(src: Path, limit: int | None = None) -> list[SourceRecord]:
    """Records of a WFDB folder, sorted by relative path (RECORDS order if that file exists)."""
    src = Path(src)
    if not src.is_dir():
        raise LabelFileError(f"{src}: not a folder; pass the folder holding the .hea files")
    if (src / "RECORDS").is_file():
        rel = _records_file_paths(src)
    else:
        rel = sorted(p.relative_to(src).with_suffix("").as_posix() for p in src.rglob("*.hea"))
    if not rel:
        raise LabelFileError(f"{src}: no records (no RECORDS file, no .hea headers under it)")
    out = []
    for r in rel[:limit] if limit is not None else rel:
        try:
            comments = read_header(src / f"{r}.hea").comments
        except BadRecord:
            comments = {}  # reported by load_signal, where a bad record is skipped
        dx = parse_dx(comments.get("dx"))
        out.append(
            SourceRecord(
                id=f"wfdb/{r}",
                patient="",
                dataset="wfdb",
                path=str(src / r),
                age=parse_age(comments.get("age")),
                sex=parse_sex(comments.get("sex")),
                codes={c: 100.0 for c in dx},
                labels={"dx": dx},
            )
        )
    return out


def load_signal(rec: SourceRecord) -> tuple[np.ndarray, list[str], float]:
    """(signal (T, n_leads) float64 mV, lead names, fs) of a WFDB record; BadRecord if unusable."""
    hdr = read_header(Path(rec.path + ".hea"))
    sig, names = read_signal(hdr)
    return sig, names, hdr.fs
