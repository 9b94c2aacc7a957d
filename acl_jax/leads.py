"""Canonical 12-lead order, lead-name aliases and anatomical region groups.

Every array in acl_jax that has a lead axis uses `LEADS` order: (I, II, III, aVR, aVL, aVF,
V1..V6). Source files name leads in many ways ("AVR", "avr", "-aVR", "MLII", "V1 "), so
readers map names through `canonical_lead` and never by position.
"""

from __future__ import annotations

LEADS: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
NUM_LEADS = len(LEADS)
LEAD_INDEX = {name: i for i, name in enumerate(LEADS)}

# Regions as in ACL-ECG: inferior, septal, anterior, lateral. aVR belongs to none by default.
DEFAULT_REGIONS = "inferior:II,III,aVF;septal:V1,V2;anterior:V3,V4;lateral:I,aVL,V5,V6"

_ALIASES = {name.lower(): name for name in LEADS}
_ALIASES.update({"mlii": "II", "ml2": "II", "d1": "I", "d2": "II", "d3": "III"})


def canonical_lead(name: str) -> str | None:
    """Maps a source lead name to its canonical name, or None when it is not a 12-lead name."""
    key = name.strip().lower().replace(" ", "").replace("_", "")
    if key.startswith("lead"):
        key = key[4:]
    return _ALIASES.get(key)


def parse_regions(spec: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """Parses "name:lead,lead;name:lead" into ((name, (lead indices...)), ...).

    Raises ValueError naming the offending part, so a typo in
    `--config.model.regions` fails at startup rather than silently dropping a lead.
    """
    regions = []
    seen: dict[int, str] = {}
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        if ":" not in part:
            raise ValueError(f"region {part!r} must look like 'name:I,aVL' (in {spec!r})")
        name, leads = part.split(":", 1)
        idx = []
        for lead in filter(None, (x.strip() for x in leads.split(","))):
            canon = canonical_lead(lead)
            if canon is None:
                raise ValueError(f"unknown lead {lead!r} in region {name!r}; leads are {LEADS}")
            i = LEAD_INDEX[canon]
            if i in seen:
                raise ValueError(f"lead {canon} is in both regions {seen[i]!r} and {name!r}")
            seen[i] = name
            idx.append(i)
        if not idx:
            raise ValueError(f"region {name!r} has no leads (in {spec!r})")
        regions.append((name.strip(), tuple(idx)))
    if len(regions) < 2:
        raise ValueError(f"need at least two regions for region contrast, got {spec!r}")
    return tuple(regions)


def region_matrix(spec: str):
    """(R, 12) float32 0/1 membership matrix of the regions in `spec`, rows in spec order."""
    import numpy as np

    regions = parse_regions(spec)
    m = np.zeros((len(regions), NUM_LEADS), np.float32)
    for r, (_, idx) in enumerate(regions):
        m[r, list(idx)] = 1.0
    return m
