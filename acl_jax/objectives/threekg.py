"""3KG (Gopal et al., ML4H 2021): contrastive learning with physiologically-inspired views.

"3KG: Contrastive Learning of 12-Lead Electrocardiograms using Physiologically-Inspired
Augmentations" (PMLR 158). Each view is the window after a random rotation and scaling of the
heart's electrical axis in vectorcardiogram space (`acl_jax.augment.vcg_rotate_scale`, ranges
cfg.augment.vcg_max_angle / vcg_scale_min / vcg_scale_max) followed by a time mask
(`acl_jax.augment.timeout`, length up to cfg.augment.timeout_max of the window): the paper's
"spatial + temporal" combination. With z^v_i = head(encoder(view_v(x_i)).global_):

    L = multi_positive_nt_xent(z^1, z^2, patient ids, tau = cfg.loss.temperature)

(formula in acl_jax.objectives.multi_positive): views of the same patient are positives, 3KG's
patient-aware positives following CLOCS.

Documented choices:
- The views come from cfg.augment.ops like every other objective's (configs/3kg_ptbxl.py sets
  ("vcg_rotate_scale", "timeout")), so ablations can add or drop ops; the op that defines 3KG,
  vcg_rotate_scale, must be listed, else construction fails. Views whose 8 independent leads
  are not all present pass through the VCG op unchanged (see acl_jax.augment.vcg).
- The augmentation ranges are cfg.augment's (defaults in acl_jax.config.AugmentConfig).
- Only the plain global features are used, in lead-wise or plain encoder mode.
"""

from __future__ import annotations

from flax import nnx

from acl_jax.config import Config
from acl_jax.objectives.multi_positive import PatientPositives
from acl_jax.objectives.simclr import SimCLR

REQUIRED_OP = "vcg_rotate_scale"


class ThreeKG(PatientPositives, SimCLR):
    """3KG: two VCG rotate/scale + time-mask views, same-patient positives."""

    def __init__(self, cfg: Config, *, fs: int, bn_axis: str | None, rngs: nnx.Rngs):
        if REQUIRED_OP not in cfg.augment.ops:
            raise ValueError(
                f"objective '3kg' makes its views with {REQUIRED_OP!r}, but augment.ops is "
                f"{cfg.augment.ops}: set --config.augment.ops=vcg_rotate_scale,timeout "
                "(or use configs/3kg_ptbxl.py)"
            )
        super().__init__(cfg, fs=fs, bn_axis=bn_axis, rngs=rngs)
