"""The SNOMED CT classes scored in the PhysioNet/CinC Challenge 2020 (27 classes; the 2021 edition
scores 26 of the same after merging one more pair) and the pairs the challenge scores as one
diagnosis. Source: physionetchallenges/evaluation-2020, dx_mapping_scored.csv.
"""

from __future__ import annotations

# SNOMED CT code -> (abbreviation, name), in the order of dx_mapping_scored.csv.
_TABLE: dict[str, tuple[str, str]] = {
    "270492004": ("IAVB", "1st degree av block"),
    "164889003": ("AF", "atrial fibrillation"),
    "164890007": ("AFL", "atrial flutter"),
    "426627000": ("Brady", "bradycardia"),
    "713427006": ("CRBBB", "complete right bundle branch block"),
    "713426002": ("IRBBB", "incomplete right bundle branch block"),
    "445118002": ("LAnFB", "left anterior fascicular block"),
    "39732003": ("LAD", "left axis deviation"),
    "164909002": ("LBBB", "left bundle branch block"),
    "251146004": ("LQRSV", "low qrs voltages"),
    "698252002": ("NSIVCB", "nonspecific intraventricular conduction disorder"),
    "10370003": ("PR", "pacing rhythm"),
    "284470004": ("PAC", "premature atrial contraction"),
    "427172004": ("PVC", "premature ventricular contractions"),
    "164947007": ("LPR", "prolonged pr interval"),
    "111975006": ("LQT", "prolonged qt interval"),
    "164917005": ("QAb", "qwave abnormal"),
    "47665007": ("RAD", "right axis deviation"),
    "59118001": ("RBBB", "right bundle branch block"),
    "427393009": ("SA", "sinus arrhythmia"),
    "426177001": ("SB", "sinus bradycardia"),
    "426783006": ("NSR", "sinus rhythm"),
    "427084000": ("STach", "sinus tachycardia"),
    "63593006": ("SVPB", "supraventricular premature beats"),
    "164934002": ("TAb", "t wave abnormal"),
    "59931005": ("TInv", "t wave inversion"),
    "17338001": ("VPB", "ventricular premature beats"),
}

SCORED: dict[str, str] = {code: abbr for code, (abbr, _) in _TABLE.items()}
NAMES: dict[str, str] = {code: name for code, (_, name) in _TABLE.items()}

# Second code of each pair -> the first, which the challenge's evaluation keeps:
# CRBBB/RBBB, PAC/SVPB, PVC/VPB.
EQUIVALENT: dict[str, str] = {
    "59118001": "713427006",
    "63593006": "284470004",
    "17338001": "427172004",
}


def scored_labels(codes: list[str]) -> list[str]:
    """Sorted scored codes among `codes`, equivalent codes merged into their representative."""
    merged = {EQUIVALENT.get(c, c) for c in codes}
    return sorted(c for c in merged if c in SCORED)
