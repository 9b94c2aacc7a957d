"""CMSC: Contrastive Multi-Segment Coding (CLOCS, Kiyasseh et al., ICML 2021).

"CLOCS: Contrastive Learning of Cardiac Signals Across Space, Time, and Patients". The two
views of an example are two temporally adjacent, non-overlapping segments of the same record,
and every view of the same patient is a positive (CLOCS' patient-specific positives).

With our pipeline the batch window (cfg.data.window = W, even) holds both segments: example
i's x_i (12, W) is split into s_i^1 = x_i[:, :W/2] and s_i^2 = x_i[:, W/2:], each encoded and
projected (z^v_i = head(encoder(s_i^v).global_)), and

    L = multi_positive_nt_xent(z^1, z^2, patient ids, tau = cfg.loss.temperature)

(formula in acl_jax.objectives.multi_positive; CLOCS used tau = 0.1). The encoder therefore
sees W/2-sample inputs in pretraining: set the window to twice the segment length wanted.

Documented choices:
- CLOCS' CMSC uses no augmentation; configs/cmsc_ptbxl.py sets cfg.augment.ops = (). Any ops
  listed there are applied to each half independently (key split in two per example), after the
  split, so time-moving ops stay inside their half.
- R-peaks are made half-relative: peaks in [0, W/2) stay in half 1, peaks in [W/2, W) move to
  half 2 as p - W/2, re-packed in the View convention (valid ascending, then -1). Both halves
  keep K slots; a record zero-padded beyond its end simply has a shorter real second half.
- Only the plain global features are used, in lead-wise or plain encoder mode.
"""

from __future__ import annotations

import jax
from flax import nnx

from acl_jax.augment import View, make_augment, pack_rpeaks, view_from_batch
from acl_jax.config import Config
from acl_jax.objectives.multi_positive import PatientPositives
from acl_jax.objectives.simclr import SimCLR


def _check_even(width: int, where: str) -> None:
    if width % 2:
        raise ValueError(
            f"objective 'cmsc' splits each window into two adjacent halves, so {where} must be "
            f"even, got {width}: set --config.data.window to an even number (2 x segment length)"
        )


def split_halves(view: View) -> tuple[View, View]:
    """Batched View x (b, 12, W) -> (first, second) halves x (b, 12, W/2), rpeaks (b, K) each.

    Peaks are made relative to their half (see the module docstring); lead masks are shared.
    """
    width = view.x.shape[-1]
    _check_even(width, f"the batch window (signal length {width})")
    h = width // 2
    r = view.rpeaks
    pack = jax.vmap(pack_rpeaks)
    first = pack(r, (r >= 0) & (r < h))
    second = pack(r - h, r >= h)
    return (
        View(view.x[..., :h], first, view.lead_mask),
        View(view.x[..., h:], second, view.lead_mask),
    )


class Cmsc(PatientPositives, SimCLR):
    """CMSC: adjacent halves of one window as the two views, same-patient positives."""

    def __init__(self, cfg: Config, *, fs: int, bn_axis: str | None, rngs: nnx.Rngs):
        _check_even(cfg.data.window, "data.window")
        super().__init__(cfg, fs=fs, bn_axis=bn_axis, rngs=rngs)
        # None when no ops are configured (the paper's CMSC): the halves are used as they are.
        self._augment = make_augment(cfg.augment, fs) if cfg.augment.ops else None

    def views(self, batch: dict, keys: jax.Array) -> tuple[View, View]:
        """The two (optionally augmented) halves; keys (b,) per-example PRNG keys."""
        first, second = split_halves(view_from_batch(batch))
        if self._augment is None:
            return first, second
        pair = jax.vmap(jax.random.split)(keys)  # (b, 2)
        augment = jax.vmap(self._augment)
        return augment(pair[:, 0], first), augment(pair[:, 1], second)
