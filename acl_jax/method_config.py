"""Each objective's own settings: one config section per method, named after it.

`Config` (acl_jax.config) holds one field per section (`cfg.acl_ecg`, `cfg.clear`, ...); settings
shared by several objectives stay in `cfg.loss`. Each section checks its values once, here, when
it is made (config file, `--config.SECTION.KEY=VALUE`, or a stored checkpoint config), with a
one-line error naming `SECTION.KEY` and the allowed range; the objectives trust them.
"""

from __future__ import annotations

from dataclasses import dataclass


def _check_weights(section: str, **weights: float) -> None:
    # Term weights: each >= 0 and at least one > 0 (a zero-weight term is not traced).
    if any(w < 0 for w in weights.values()) or not any(w > 0 for w in weights.values()):
        names = ", ".join(f"{section}.{k}={w}" for k, w in weights.items())
        raise ValueError(f"{names}: each must be >= 0 and at least one > 0")


# ACL-ECG's inter-region term L_inter, exact formulas in acl_jax/objectives/acl_ecg.py.
REGION_OBJECTIVES = ("within_record", "within_record_raw", "inter_alignment")


@dataclass(frozen=True, kw_only=True)
class AclEcgConfig:
    w_global: float = 1.0  # NT-Xent over global projections
    w_intra: float = 1.0  # same region across records
    w_inter: float = 0.5  # the inter-region term, as region_objective defines it
    # L_inter: inter_alignment (a record's other regions in the other view as positives, other
    # records' regions as negatives) | within_record (a record's regions apart) |
    # within_record_raw (the same on regions pooled without the lead embedding).
    # inter_alignment is the default: best mean val AUROC over 3 seeds of the five variants in
    # issue 15's study (README, bench/results/compare_seeds_1500.md); within_record was before.
    region_objective: str = "inter_alignment"
    region_heads: bool = False  # one projection head per region instead of one shared head

    def __post_init__(self):
        _check_weights(
            "acl_ecg", w_global=self.w_global, w_intra=self.w_intra, w_inter=self.w_inter
        )
        if self.region_objective not in REGION_OBJECTIVES:
            raise ValueError(
                f"acl_ecg.region_objective={self.region_objective!r} is not one of "
                f"{', '.join(REGION_OBJECTIVES)}"
            )


@dataclass(frozen=True, kw_only=True)
class DlcConfig:
    w_intra: float = 1.0  # same lead across records
    w_inter: float = 1.0  # other leads of the same record

    def __post_init__(self):
        _check_weights("dlc", w_intra=self.w_intra, w_inter=self.w_inter)


@dataclass(frozen=True, kw_only=True)
class BarlowTwinsConfig:
    lambd: float = 5e-3  # off-diagonal weight lambda (Zbontar et al. 2021)
    eps: float = 1e-5  # added to the variance when standardizing (BatchNorm's default)
    projector_layers: int = 3  # Linear layers in the projector (paper: 3)

    def __post_init__(self):
        if not self.lambd >= 0:
            raise ValueError(f"barlow_twins.lambd must be >= 0, got {self.lambd}")
        if not self.eps > 0 or self.projector_layers < 1:
            raise ValueError(
                f"barlow_twins.eps must be > 0 and barlow_twins.projector_layers >= 1, got "
                f"{self.eps}, {self.projector_layers}"
            )


@dataclass(frozen=True, kw_only=True)
class VicregConfig:
    sim_weight: float = 25.0  # invariance weight lambda (Bardes et al. 2022)
    var_weight: float = 25.0  # variance weight mu
    cov_weight: float = 1.0  # covariance weight nu
    eps: float = 1e-4  # inside the square root of the variance term
    projector_layers: int = 3  # Linear layers in the projector (paper: 3)

    def __post_init__(self):
        _check_weights(
            "vicreg",
            sim_weight=self.sim_weight,
            var_weight=self.var_weight,
            cov_weight=self.cov_weight,
        )
        if not self.eps > 0 or self.projector_layers < 1:
            raise ValueError(
                f"vicreg.eps must be > 0 and vicreg.projector_layers >= 1, got {self.eps}, "
                f"{self.projector_layers}"
            )


@dataclass(frozen=True, kw_only=True)
class LcdConfig:
    lambda_dec: float = 1.0  # weight of the cross-lead decorrelation term
    eps: float = 1e-5  # added to the variance when standardizing

    def __post_init__(self):
        if not self.lambda_dec >= 0 or not self.eps > 0:
            raise ValueError(
                f"lcd.lambda_dec must be >= 0 and lcd.eps > 0, got {self.lambda_dec}, {self.eps}"
            )


@dataclass(frozen=True, kw_only=True)
class MocoConfig:
    queue_size: int = 0  # past keys kept per view as extra negatives; 0 = off (MoCo v3)

    def __post_init__(self):
        if self.queue_size < 0:
            raise ValueError(f"moco.queue_size must be >= 0, got {self.queue_size}")


@dataclass(frozen=True, kw_only=True)
class ClearConfig:
    mask_ratio: float = 0.75  # fraction of each example's valid beat tokens masked
    beat_before_s: float = 0.25  # beat window starts this long before the R-peak
    beat_after_s: float = 0.45  # and ends this long after it
    d_model: int = 64
    depth: int = 4
    heads: int = 4
    mlp_ratio: int = 2
    decoder_dim: int = 64
    decoder_depth: int = 1
    norm_target: bool = False  # per-beat normalized reconstruction target

    def __post_init__(self):
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"clear.mask_ratio must be in (0, 1), got {self.mask_ratio}")
        if self.beat_before_s < 0 or self.beat_after_s <= 0:
            raise ValueError(
                f"clear.beat_before_s ({self.beat_before_s}) must be >= 0 and "
                f"clear.beat_after_s ({self.beat_after_s}) > 0"
            )


@dataclass(frozen=True, kw_only=True)
class CoreEcgConfig:
    patch: int = 25  # samples per patch token (0.25 s at 100 Hz)
    heads: int = 4
    mlp_ratio: int = 2
    decoder_dim: int = 64
    decoder_depth: int = 1
    time_ratio: float = 0.5  # STDM: P(token in a temporal span)
    span: int = 2  # STDM: span length in patches
    lead_prob: float = 0.2  # STDM: P(unit masked over the whole window)
    keep_one_prob: float = 0.5  # STDM: P(one limb lead stays visible at masked limb times)
    fda_band_edges_hz: tuple[float, ...] = (0.5, 5.0, 15.0, 40.0)
    fda_importance: tuple[float, ...] = (0.2, 0.9, 0.9, 0.6, 0.1)
    fda_jitter: float = 0.8
    fda_drop_prob: float = 0.3
    w_rec: float = 1.0
    w_con: float = 1.0
    norm_target: bool = False

    def __post_init__(self):
        if self.patch < 1 or self.decoder_depth < 1:
            raise ValueError(
                f"core_ecg.patch ({self.patch}) and core_ecg.decoder_depth "
                f"({self.decoder_depth}) must be >= 1"
            )
        if self.w_rec < 0 or self.w_con < 0 or self.w_rec + self.w_con == 0:
            raise ValueError(
                f"core_ecg.w_rec ({self.w_rec}) and core_ecg.w_con ({self.w_con}) must be "
                ">= 0 and not both 0"
            )
        for name in ("time_ratio", "lead_prob", "keep_one_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"core_ecg.{name} must be in [0, 1], got {getattr(self, name)}")
        if int(self.span) != self.span or self.span < 1:
            raise ValueError(f"core_ecg.span must be an int >= 1 (patches), got {self.span}")


@dataclass(frozen=True, kw_only=True)
class BeatSslConfig:
    gamma: float = 4.0  # soft-target sharpening exponent; inf gives NT-Xent's one-hot targets
    beat_before_s: float = 0.25  # beat window starts this long before the R-peak
    beat_after_s: float = 0.45  # and ends this long after it
    beats_per_window: int = 4  # valid beats used per window (the first ones)
    w_rhythm: float = 1.0
    w_beat: float = 1.0

    def __post_init__(self):
        if not self.gamma > 0:
            raise ValueError(
                f"beat_ssl.gamma (soft-target sharpening) must be > 0, got {self.gamma}"
            )
        if self.beat_before_s < 0 or self.beat_after_s <= 0:
            raise ValueError(
                f"beat_ssl.beat_before_s ({self.beat_before_s}) must be >= 0 and "
                f"beat_ssl.beat_after_s ({self.beat_after_s}) > 0"
            )
        if self.beats_per_window < 1:
            raise ValueError(f"beat_ssl.beats_per_window must be >= 1, got {self.beats_per_window}")
        if min(self.w_rhythm, self.w_beat) < 0 or self.w_rhythm + self.w_beat == 0:
            raise ValueError(
                f"beat_ssl.w_rhythm ({self.w_rhythm}) and beat_ssl.w_beat ({self.w_beat}) "
                "must be >= 0 and not both 0"
            )
