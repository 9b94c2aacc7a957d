"""Train/val/test splits for `acl_jax.prepare`: by source fold or by seeded patient fractions.

Two spec forms (`--splits`):
  folds      "train=1-8,val=9,test=10", "a=1,3,5;b=2"  (integers and inclusive ranges; a
             comma followed by a number continues the previous split's fold list)
  fractions  "train=0.8,val=0.1,test=0.1"  (for datasets without folds; patient level)

Patients never straddle splits: fold splits rely on the source folds being patient-disjoint
(PTB-XL strat_folds are) and `assert_patient_disjoint` checks it; fractional splits assign whole
patients. A record with an empty patient id is its own patient.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from acl_jax.data.sources import SourceRecord

_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")
_RANGE = re.compile(r"^(\d+)\s*-\s*(\d+)$")


@dataclass(frozen=True)
class SplitSpec:
    """Parsed `--splits`: ordered (name, folds) pairs or ordered (name, fraction) pairs."""

    folds: tuple[tuple[str, frozenset[int]], ...] = ()
    fractions: tuple[tuple[str, float], ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in (self.folds or self.fractions))

    def canonical(self) -> str:
        """A normalized spec string: equal for equivalent specs (stored in the manifest)."""
        if self.folds:
            return ",".join(f"{n}={'+'.join(map(str, sorted(f)))}" for n, f in self.folds)
        return ",".join(f"{n}={f!r}" for n, f in self.fractions)


def _split_parts(spec: str) -> list[tuple[str, str]]:
    """'a=1,3,b=2' -> [('a', '1,3'), ('b', '2')]; ';' may also separate splits."""
    parts: list[tuple[str, str]] = []
    for token in (t.strip() for t in re.split(r"[,;]", spec)):
        if not token:
            continue
        if "=" in token:
            name, value = (s.strip() for s in token.split("=", 1))
            if not _NAME.match(name):
                raise ValueError(
                    f"--splits {spec!r}: bad split name {name!r} (use letters, digits, '_' or '-')"
                )
            if any(name == n for n, _ in parts):
                raise ValueError(f"--splits {spec!r}: split {name!r} is given twice")
            parts.append((name, value))
        elif parts:
            parts[-1] = (parts[-1][0], f"{parts[-1][1]},{token}")
        else:
            raise ValueError(f"--splits {spec!r}: expected 'name=...' first, got {token!r}")
    if not parts:
        raise ValueError(f"--splits {spec!r} names no split; e.g. 'train=1-8,val=9,test=10'")
    return parts


def _parse_folds(spec: str, name: str, value: str) -> frozenset[int]:
    folds: set[int] = set()
    for item in (s.strip() for s in value.split(",")):
        m = _RANGE.match(item)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            if lo > hi:
                raise ValueError(f"--splits {spec!r}: range {item!r} of {name!r} is reversed")
            folds.update(range(lo, hi + 1))
        elif item.isdigit():
            folds.add(int(item))
        else:
            raise ValueError(
                f"--splits {spec!r}: {item!r} in split {name!r} is not a fold "
                "number or range like 1-8"
            )
    return frozenset(folds)


def parse_splits(spec: str) -> SplitSpec:
    """Parses a `--splits` value; raises ValueError naming the offending part."""
    parts = _split_parts(spec)
    is_fraction = ["." in v for _, v in parts]
    if any(is_fraction) and not all(is_fraction):
        raise ValueError(
            f"--splits {spec!r} mixes folds and fractions; use one form, e.g. "
            "'train=1-8,val=9,test=10' or 'train=0.8,val=0.1,test=0.1'"
        )
    if all(is_fraction):
        fractions = []
        for name, value in parts:
            try:
                f = float(value)
            except ValueError:
                raise ValueError(
                    f"--splits {spec!r}: {value!r} of split {name!r} is not a fraction"
                ) from None
            if not 0.0 < f <= 1.0:
                raise ValueError(f"--splits {spec!r}: fraction {f} of {name!r} not in (0, 1]")
            fractions.append((name, f))
        total = sum(f for _, f in fractions)
        if total > 1.0 + 1e-9:
            raise ValueError(f"--splits {spec!r}: fractions sum to {total:g} > 1")
        return SplitSpec(fractions=tuple(fractions))
    folds = [(name, _parse_folds(spec, name, value)) for name, value in parts]
    seen: dict[int, str] = {}
    for name, fs in folds:
        for f in sorted(fs):
            if f in seen:
                raise ValueError(f"--splits {spec!r}: fold {f} is in both {seen[f]!r} and {name!r}")
            seen[f] = name
    return SplitSpec(folds=tuple(folds))


def patient_key(rec: SourceRecord) -> str:
    """The patient a record belongs to; a record without a patient id is its own patient."""
    return f"{rec.dataset}/{rec.patient}" if rec.patient else f"record:{rec.id}"


def _seeded_order(keys: Iterable[str], seed: int) -> list[str]:
    # Ordering by a keyed hash is a seeded permutation that does not depend on input order.
    def h(k: str) -> bytes:
        return hashlib.sha256(f"{seed}\x00{k}".encode()).digest()

    return sorted(set(keys), key=lambda k: (h(k), k))


def assign_splits(
    records: Sequence[SourceRecord], spec: SplitSpec, seed: int = 0
) -> tuple[dict[str, list[SourceRecord]], list[SourceRecord]]:
    """Groups records into splits: ({name: records sorted by id}, unassigned records).

    Fold specs: a record goes to the split listing its fold. Fraction specs: patients are put
    in a seeded order and cut into consecutive blocks of round(fraction * num_patients); whole
    patients only, so per-split record fractions are approximate.
    """
    out: dict[str, list[SourceRecord]] = {name: [] for name in spec.names}
    unassigned: list[SourceRecord] = []
    if spec.folds:
        if records and all(r.fold < 0 for r in records):
            raise ValueError(
                "--splits gives folds but these records have no folds; use "
                "fractions, e.g. --splits train=0.8,val=0.1,test=0.1"
            )
        by_fold = {f: name for name, fs in spec.folds for f in fs}
        for r in records:
            name = by_fold.get(r.fold)
            (out[name] if name is not None else unassigned).append(r)
    else:
        order = _seeded_order((patient_key(r) for r in records), seed)
        split_of: dict[str, str] = {}
        start, cum = 0, 0.0
        for name, frac in spec.fractions:
            cum += frac
            stop = min(len(order), round(cum * len(order)))
            split_of.update((k, name) for k in order[start:stop])
            start = stop
        for r in records:
            name = split_of.get(patient_key(r))
            (out[name] if name is not None else unassigned).append(r)
    for recs in out.values():
        recs.sort(key=lambda r: r.id)
    assert_patient_disjoint(out)
    return out, sorted(unassigned, key=lambda r: r.id)


def assert_patient_disjoint(records_by_split: dict[str, Sequence[SourceRecord]]) -> None:
    """Raises ValueError listing patients that occur in more than one split."""
    where: dict[str, set[str]] = {}
    for name, recs in records_by_split.items():
        for r in recs:
            where.setdefault(patient_key(r), set()).add(name)
    shared = {k: sorted(v) for k, v in where.items() if len(v) > 1}
    if shared:
        sample = ", ".join(f"{k} in {v}" for k, v in sorted(shared.items())[:10])
        raise ValueError(f"{len(shared)} patients occur in more than one split: {sample}")


def count_patients(records: Iterable[SourceRecord]) -> int:
    return len({patient_key(r) for r in records})
