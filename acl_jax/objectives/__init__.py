"""Objective registry: `--config.objective=NAME` picks the objective class here.

Each is an `acl_jax.models.roles.Trainable`: encoder + the heads, predictors or momentum
targets its loss needs, built from `Config` (shared settings in cfg.loss, the method's own in
its section, e.g. cfg.acl_ecg).
"""

from __future__ import annotations

from flax import nnx

from acl_jax.config import Config
from acl_jax.models.roles import Trainable
from acl_jax.objectives.acl_ecg import AclEcg
from acl_jax.objectives.barlow_twins import BarlowTwins
from acl_jax.objectives.beat_ssl import BeatSsl
from acl_jax.objectives.byol import BYOL
from acl_jax.objectives.clear import Clear
from acl_jax.objectives.cmsc import Cmsc
from acl_jax.objectives.core_ecg import CoreEcg
from acl_jax.objectives.dlc import Dlc
from acl_jax.objectives.lcd import Lcd
from acl_jax.objectives.moco import MoCoV3
from acl_jax.objectives.simclr import SimCLR
from acl_jax.objectives.simsiam import SimSiam
from acl_jax.objectives.threekg import ThreeKG
from acl_jax.objectives.vicreg import VICReg

OBJECTIVES: dict[str, type[Trainable]] = {
    "acl_ecg": AclEcg,
    "simclr": SimCLR,
    "moco": MoCoV3,
    "byol": BYOL,
    "simsiam": SimSiam,
    "cmsc": Cmsc,
    "3kg": ThreeKG,
    "barlow_twins": BarlowTwins,
    "vicreg": VICReg,
    "dlc": Dlc,
    "lcd": Lcd,
    "clear": Clear,
    "core_ecg": CoreEcg,
    "beat_ssl": BeatSsl,
}


def build_pretrainer(cfg: Config, *, fs: int, bn_axis: str | None, rngs: nnx.Rngs) -> Trainable:
    """The objective's model (encoder + heads) for `cfg`; fs is the prepared data's rate."""
    if cfg.objective not in OBJECTIVES:
        raise ValueError(
            f"unknown objective {cfg.objective!r} (--config.objective); "
            f"choose one of {sorted(OBJECTIVES)}"
        )
    return OBJECTIVES[cfg.objective](cfg, fs=fs, bn_axis=bn_axis, rngs=rngs)


__all__ = ["OBJECTIVES", "build_pretrainer"]
