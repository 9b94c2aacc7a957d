"""The one configuration schema: frozen dataclasses, defaults stated once, here.

A config file in configs/ defines `get_config() -> Config`; every field checks its range when
the config is built (one-line ConfigError/ValueError naming `section.key`). Command-line
overrides (`--config.a.b=value`) live in acl_jax.config_cli; each method's own settings in
acl_jax.method_config. Configs are frozen and hashable, so parts of them are closed over as
static values in jitted functions.
"""

from __future__ import annotations

import contextvars
import dataclasses
import importlib.util
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acl_jax import resources
from acl_jax.leads import DEFAULT_REGIONS
from acl_jax.method_config import (
    AclEcgConfig,
    BarlowTwinsConfig,
    BeatSslConfig,
    ClearConfig,
    CoreEcgConfig,
    DlcConfig,
    LcdConfig,
    MocoConfig,
    VicregConfig,
)


class ConfigError(ValueError):
    pass


def _require(ok: bool, key: str, value: Any, allowed: str) -> None:
    """One-line refusal naming the key, the value and the allowed range (NaN never passes)."""
    if not ok:
        raise ConfigError(f"{key}={value!r} is out of range: it must be {allowed} (--config.{key})")


def _positive_ints(section: str, obj, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        _require(value >= 1, f"{section}.{name}", value, "an integer >= 1")


def _non_negative(section: str, obj, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        _require(0 <= value < math.inf, f"{section}.{name}", value, ">= 0 and finite")


def _fractions(section: str, obj, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        _require(0.0 <= value <= 1.0, f"{section}.{name}", value, "in [0, 1]")


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    dir: str = "data/prepared/sample"  # output of `python -m acl_jax.prepare`
    train_split: str = "train"
    window: int = 250  # crop length in samples at the prepared rate
    batch_size: int = 256  # global, over all devices and processes
    max_beats: int = 16  # R-peaks per window kept for cycle masking, padded with -1
    num_workers: int = 0  # Grain worker processes (0 is fastest on 2 cores)
    prefetch: int = 4  # batches prefetched by the Grain iterator
    eval_window: int = 0  # evaluation window; 0 means `window` (CMSC trains on window / 2)
    eval_stride: int = 0  # sliding-window stride for evaluation; 0 means the eval window

    def __post_init__(self):
        # The data-dependent limits (window vs record length, batch vs split size) are checked
        # where the data is first opened: acl_jax.train.preflight.
        _positive_ints("data", self, "window", "batch_size", "max_beats", "prefetch")
        _non_negative("data", self, "num_workers", "eval_window", "eval_stride")
        _require(bool(self.dir), "data.dir", self.dir, "a prepared data directory")
        _require(bool(self.train_split), "data.train_split", self.train_split, "a split name")


@dataclass(frozen=True, kw_only=True)
class AugmentConfig:
    # Applied in this order to each view; names from acl_jax.augment.
    ops: tuple[str, ...] = ("scale_crop", "cycle_mask", "time_shift", "gaussian_noise")
    scale_crop_min: float = 0.5  # fraction of the window kept before resizing back
    cycle_mask_prob: float = 0.5  # probability that each cardiac cycle is masked
    cycle_mask_max: int = 2  # at most this many cycles masked per view
    time_shift_max: float = 0.25  # max circular shift, fraction of the window
    noise_std: float = 0.05  # mV
    amplitude_min: float = 0.5
    amplitude_max: float = 2.0
    wander_amp: float = 0.3  # mV
    wander_freq_max: float = 0.5  # Hz
    powerline_amp: float = 0.1  # mV
    powerline_freq: float = 50.0  # Hz
    lead_dropout_prob: float = 0.2
    timeout_max: float = 0.2  # fraction of the window zeroed
    vcg_max_angle: float = 45.0  # degrees, 3KG rotation
    vcg_scale_min: float = 0.5
    vcg_scale_max: float = 1.5

    def __post_init__(self):
        # The same ranges acl_jax.augment checks when building each op (plus fs-dependent
        # limits there), so that a bad value is refused even for an op not in `ops`.
        a = "augment"
        _require(
            0.0 < self.scale_crop_min <= 1.0,
            f"{a}.scale_crop_min",
            self.scale_crop_min,
            "in (0, 1]",
        )
        _fractions(a, self, "cycle_mask_prob", "time_shift_max", "lead_dropout_prob", "timeout_max")
        _require(self.cycle_mask_max >= 0, f"{a}.cycle_mask_max", self.cycle_mask_max, ">= 0")
        _non_negative(
            a, self, "noise_std", "wander_amp", "wander_freq_max", "powerline_amp", "vcg_max_angle"
        )
        _require(
            0.0 < self.powerline_freq < math.inf,
            f"{a}.powerline_freq",
            self.powerline_freq,
            "> 0 Hz",
        )
        for low, high in (("amplitude_min", "amplitude_max"), ("vcg_scale_min", "vcg_scale_max")):
            lo, hi = getattr(self, low), getattr(self, high)
            _require(0.0 < lo < math.inf, f"{a}.{low}", lo, "> 0")
            _require(lo <= hi < math.inf, f"{a}.{high}", hi, f">= {a}.{low}={lo}")


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    arch: str = "resnet1d"
    lead_wise: bool = True  # one shared single-lead encoder + lead embeddings
    widths: tuple[int, ...] = (32, 64, 128, 128)
    blocks: tuple[int, ...] = (1, 1, 1, 1)
    kernel: int = 7
    proj_hidden: int = 512
    proj_dim: int = 128
    pred_hidden: int = 0  # predictor hidden width (BYOL/SimSiam/MoCo); 0 = method default
    regions: str = DEFAULT_REGIONS
    dtype: str = "float32"  # compute dtype; parameters stay float32
    stem_stride: int = 2  # resnet1d stem convolution stride (a max-pool /2 follows)
    stem_kernel: int = 0  # resnet1d stem convolution width; 0 = `kernel`
    leads: str = ""  # lead-wise: comma list of leads encoded ("" = all 12); others never computed
    # Lead-wise: pool regions from lead features WITH their learned lead embedding (True) or
    # from the backbone's features alone (False), so that telling regions apart (ACL-ECG's
    # L_inter) must come from the signal rather than from the embedding offset.
    region_embed: bool = True

    def __post_init__(self):
        m = "model"
        _require(len(self.widths) >= 1, f"{m}.widths", self.widths, "at least one stage width")
        _require(min(self.widths, default=1) >= 1, f"{m}.widths", self.widths, "all >= 1")
        # How blocks pair with widths is the backbone's (resnet1d: one count per stage; the
        # transformer: depth = sum); it refuses a mismatch when built.
        _require(len(self.blocks) >= 1, f"{m}.blocks", self.blocks, "at least one block count")
        _require(min(self.blocks, default=1) >= 1, f"{m}.blocks", self.blocks, "all >= 1")
        _positive_ints(m, self, "kernel", "proj_hidden", "proj_dim", "stem_stride")
        _non_negative(m, self, "pred_hidden", "stem_kernel")
        _require(
            self.dtype in ("float32", "bfloat16"),
            f"{m}.dtype",
            self.dtype,
            "'float32' or 'bfloat16'",
        )


@dataclass(frozen=True, kw_only=True)
class LossConfig:
    """Settings shared by several objectives; a method's own settings are in its section."""

    temperature: float = 0.1  # contrastive objectives (NT-Xent, InfoNCE, soft targets)
    base_momentum: float = 0.99  # BYOL/MoCo/LCD EMA momentum at step 1, cosine-increased to 1

    def __post_init__(self):
        if not self.temperature > 0:
            raise ValueError(f"loss.temperature must be > 0, got {self.temperature}")
        if not 0.0 <= self.base_momentum <= 1.0:
            raise ValueError(f"loss.base_momentum must be in [0, 1], got {self.base_momentum}")


@dataclass(frozen=True, kw_only=True)
class OptimConfig:
    name: str = "adamw"  # adamw | lars
    lr: float = 1e-3  # peak, for batch_size 256 (scaled linearly with batch size)
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    clip_norm: float = 1.0
    momentum: float = 0.9  # lars only

    def __post_init__(self):
        o = "optim"
        _require(self.name in ("adamw", "lars"), f"{o}.name", self.name, "'adamw' or 'lars'")
        _require(0.0 < self.lr < math.inf, f"{o}.lr", self.lr, "> 0 and finite")
        _non_negative(o, self, "weight_decay", "warmup_steps", "clip_norm")
        _require(0.0 <= self.momentum < 1.0, f"{o}.momentum", self.momentum, "in [0, 1)")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    steps: int = 1000
    log_every: int = 10
    ckpt_every: int = 200
    keep: int = 3
    async_checkpoint: bool = True
    # Steps per compiled call (the step traced that many times): dispatch, Python and
    # host-transfer costs are paid once per call; compile time grows with it. Logs and
    # checkpoints land on call ends.
    steps_per_call: int = 1

    def __post_init__(self):
        _positive_ints("train", self, "steps", "log_every", "ckpt_every", "keep", "steps_per_call")
        k, every = self.steps_per_call, math.gcd(self.log_every, self.ckpt_every)
        if every % k:
            raise ConfigError(
                f"train.steps_per_call={k} must divide train.log_every={self.log_every} and "
                f"train.ckpt_every={self.ckpt_every} (logs and checkpoints land on the end of a "
                f"call): set --config.train.steps_per_call to a divisor of {every}"
            )


@dataclass(frozen=True, kw_only=True)
class Config:
    seed: int = 0
    objective: str = "acl_ecg"
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    clear: ClearConfig = field(default_factory=ClearConfig)  # objective 'clear' only
    core_ecg: CoreEcgConfig = field(default_factory=CoreEcgConfig)  # objective 'core_ecg' only
    beat_ssl: BeatSslConfig = field(default_factory=BeatSslConfig)  # objective 'beat_ssl' only
    acl_ecg: AclEcgConfig = field(default_factory=AclEcgConfig)  # objective 'acl_ecg' only
    dlc: DlcConfig = field(default_factory=DlcConfig)  # objective 'dlc' only
    barlow_twins: BarlowTwinsConfig = field(default_factory=BarlowTwinsConfig)
    vicreg: VicregConfig = field(default_factory=VicregConfig)  # objective 'vicreg' only
    lcd: LcdConfig = field(default_factory=LcdConfig)  # objective 'lcd' only
    moco: MocoConfig = field(default_factory=MocoConfig)  # objective 'moco' only

    def __post_init__(self):
        _require(self.seed >= 0, "seed", self.seed, "an integer >= 0")
        if _CHECK_SCHEDULE.get():
            check_schedule(self)


# from_dict turns this off: a checkpoint written before the warmup rule still loads for eval.
_CHECK_SCHEDULE = contextvars.ContextVar("acl_jax_check_schedule", default=True)


def check_schedule(cfg: Config) -> None:
    """Warmup must end before the last step: otherwise the rate never reaches its peak and
    never decays (the schedule used to clamp warmup to steps - 1 silently)."""
    warmup, steps = cfg.optim.warmup_steps, cfg.train.steps
    if warmup and warmup >= steps:
        raise ConfigError(
            f"optim.warmup_steps={warmup} must be < train.steps={steps} (warmup would never "
            f"end, so the rate would never decay): set --config.optim.warmup_steps=N with "
            f"N < {steps} (e.g. {steps // 10}) or raise --config.train.steps"
        )


def load_config(path: str | Path) -> Config:
    """Imports `path` (a file, or a shipped config's name, e.g. 'acl_ecg_ptbxl') and returns its
    `get_config()`."""
    found = resources.config_file(path)
    if found is None:
        raise ConfigError(
            f"config file {path} does not exist; the shipped configs, by name: "
            f"{', '.join(resources.config_names())}"
        )
    path = found
    spec = importlib.util.spec_from_file_location(f"acl_jax_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"config file {path} must define get_config() -> Config")
    cfg = module.get_config()
    if not isinstance(cfg, Config):
        raise ConfigError(f"{path}: get_config() returned {type(cfg).__name__}, not Config")
    return cfg


def _field_types(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def to_dict(cfg: Config) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


# Keys that lived in `loss` before each method got its own section: old key -> (section, key).
# w_intra / w_inter were shared by ACL-ECG and DLC; they go to the stored objective's section.
_MOVED_LOSS_KEYS = {
    "w_global": ("acl_ecg", "w_global"),
    "w_intra": ("acl_ecg", "w_intra"),
    "w_inter": ("acl_ecg", "w_inter"),
    "bt_lambda": ("barlow_twins", "lambd"),
    "vicreg_sim": ("vicreg", "sim_weight"),
    "vicreg_var": ("vicreg", "var_weight"),
    "vicreg_cov": ("vicreg", "cov_weight"),
    "lcd_lambda_dec": ("lcd", "lambda_dec"),
    "queue_size": ("moco", "queue_size"),
}


def _migrate(d: dict[str, Any]) -> dict[str, Any]:
    """A stored config dict with pre-section `loss.*` keys moved to their method sections."""
    loss = d.get("loss")
    if not isinstance(loss, dict) or not set(loss) & set(_MOVED_LOSS_KEYS):
        return d
    d = {**d, "loss": dict(loss)}
    for old, (section, key) in _MOVED_LOSS_KEYS.items():
        if old not in d["loss"]:
            continue
        value = d["loss"].pop(old)
        if d.get("objective") == "dlc" and section == "acl_ecg":
            if old == "w_global":
                continue  # DLC had no global term
            section = "dlc"
        d[section] = {**d.get(section, {}), key: value}
    return d


def from_dict(d: dict[str, Any]) -> Config:
    """Rebuilds a Config from `to_dict` output (e.g. the JSON stored in a checkpoint).

    Dicts written before the method sections existed (`loss.w_inter`, `loss.bt_lambda`, ...)
    are migrated, so old workdirs still resume and evaluate. Every field's range is checked; the
    warmup-vs-steps rule is not, so that checkpoints written before it still load (new runs are
    checked by `check_schedule` in training).
    """

    def build(cls, values):
        hints = _field_types(cls)
        kwargs = {}
        for k, v in values.items():
            if k not in hints:
                raise ConfigError(
                    f"stored config has unknown key {k!r} for {cls.__name__}; "
                    "was it written by a newer acl_jax?"
                )
            t = hints[k]
            if dataclasses.is_dataclass(t):
                kwargs[k] = build(t, v)
            elif typing.get_origin(t) is tuple:
                kwargs[k] = tuple(v)
            else:
                kwargs[k] = v
        return cls(**kwargs)

    token = _CHECK_SCHEDULE.set(False)
    try:
        return build(Config, _migrate(d))
    finally:
        _CHECK_SCHEDULE.reset(token)


def to_json(cfg: Config) -> str:
    return json.dumps(to_dict(cfg), indent=2, sort_keys=True)


__all__ = [
    "AclEcgConfig",
    "AugmentConfig",
    "BarlowTwinsConfig",
    "BeatSslConfig",
    "ClearConfig",
    "Config",
    "ConfigError",
    "CoreEcgConfig",
    "DataConfig",
    "DlcConfig",
    "LcdConfig",
    "LossConfig",
    "MocoConfig",
    "ModelConfig",
    "OptimConfig",
    "TrainConfig",
    "VicregConfig",
    "check_schedule",
    "from_dict",
    "load_config",
    "to_dict",
    "to_json",
]
