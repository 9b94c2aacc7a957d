"""Spatio-Temporal Dual Masking (STDM), after CoRe-ECG (Qin et al., arXiv 2604.11359).

STDM masks per-lead patch tokens along time AND across leads at once, so that a masked token
cannot be recovered by a linear combination of the visible leads at the same instant (the
shortcut that makes plain per-token masking of 12-lead ECGs easy). The paper's exact
sampling is not available to us; this is our documented rule.

Why the limb leads are one unit: the six limb leads span a 2-D space (Einthoven III = II - I;
Goldberger aVR = -(I + II) / 2, aVL = I - II / 2, aVF = II - I / 2) and no two of them are
collinear, so ANY two visible limb leads at time t give all six at t; one visible lead gives
only one projection. The precordial leads V1..V6 are not linear combinations of other leads
(I, II, V1..V6 are the 8 independent leads), so each is its own unit.

Units u: the limb group (u = 0) and V1..V6 (u = 1..6). P patches per lead. Per example:

    w_u ~ Bernoulli(lead_prob)                                    whole-unit (spatial) mask
    a_{u,j} ~ Bernoulli(q), j = -(span-1)..P-1, q = 1 - (1 - time_ratio)^(1 / span)
    tau_{u,t} = OR_{j = t-span+1..t} a_{u,j}                      temporal spans of `span`
                                                                  patches; P(tau = 1) = time_ratio
    M_{u,t} = w_u OR tau_{u,t}
    keeper  = with probability keep_one_prob a uniformly drawn PRESENT limb lead, else none
    masked[V_i, t] = M_{i,t};   masked[l, t] = M_{0,t} AND l != keeper   (l a limb lead)
    masked &= present (absent leads are never targets)

Guarantees (tested): (1) limb rule: at every t, among the present limb leads either none is
masked or at most one (the keeper) is visible, i.e. "keep at most one limb lead visible or mask
all six"; (2) a unit with w_u = 1 leaves none of its leads visible at any t (the keeper
excepted), so a lead chosen for spatial masking is never partly visible. Fallback: if no
present token would stay visible, the whole patch column t0 (uniform) is unmasked for every
lead, which keeps (1) (nothing masked at t0) and gives the encoder something to attend to.
Expected mask ratio of a precordial lead: 1 - (1 - lead_prob)(1 - time_ratio) (0.6 with the
defaults 0.2, 0.5); a limb lead slightly less (the keeper).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from acl_jax.leads import LEAD_INDEX, NUM_LEADS

LIMB = tuple(LEAD_INDEX[n] for n in ("I", "II", "III", "aVR", "aVL", "aVF"))
PRECORDIAL = tuple(LEAD_INDEX[f"V{i}"] for i in range(1, 7))
NUM_UNITS = 1 + len(PRECORDIAL)
# unit index of each lead in LEADS order
UNIT_OF_LEAD = np.zeros(NUM_LEADS, np.int32)
UNIT_OF_LEAD[list(PRECORDIAL)] = np.arange(1, NUM_UNITS)


class StdmDraw(NamedTuple):
    """One example's STDM sample (batched: a leading b axis on every field)."""

    masked: jax.Array  # (12, P) bool, True = token hidden from the encoder and reconstructed
    whole: jax.Array  # (7,) bool, w_u: unit masked over the whole window
    spans: jax.Array  # (7, P) bool, tau_{u,t}: temporal spans
    keeper: jax.Array  # () int32, the limb lead left visible at masked limb times, -1 for none


def stdm_mask(
    key: jax.Array,
    lead_mask: jax.Array,
    num_patches: int,
    *,
    time_ratio: float,
    span: int,
    lead_prob: float,
    keep_one_prob: float,
) -> StdmDraw:
    """One example: key, lead_mask (12,) 0/1, P -> StdmDraw (module docstring)."""
    p = num_patches
    k_whole, k_start, k_keep, k_which, k_col = jax.random.split(key, 5)
    whole = jax.random.uniform(k_whole, (NUM_UNITS,)) < lead_prob
    q = 1.0 - (1.0 - time_ratio) ** (1.0 / span)
    starts = jax.random.uniform(k_start, (NUM_UNITS, p + span - 1)) < q
    # Start j (shifted by span - 1) covers patches j..j+span-1: patch t sees `span` starts.
    spans = jnp.stack([starts[:, i : i + p] for i in range(span)]).any(axis=0)
    unit = whole[:, None] | spans  # (7, P)

    present = lead_mask > 0
    limb_present = present[jnp.asarray(LIMB)]
    keep = (jax.random.uniform(k_keep) < keep_one_prob) & limb_present.any()
    # argmax of uniform scores over the present limb leads = a uniform draw among them
    scores = jnp.where(limb_present, jax.random.uniform(k_which, (len(LIMB),)), -1.0)
    keeper = jnp.where(keep, jnp.asarray(LIMB)[jnp.argmax(scores)], -1).astype(jnp.int32)

    is_keeper = jnp.arange(NUM_LEADS) == keeper
    masked = unit[jnp.asarray(UNIT_OF_LEAD)] & ~is_keeper[:, None] & present[:, None]
    nothing_visible = ~jnp.any(present[:, None] & ~masked)
    column = jnp.arange(p) == jax.random.randint(k_col, (), 0, p)
    masked = jnp.where(nothing_visible & column[None, :], False, masked)
    return StdmDraw(masked=masked, whole=whole, spans=spans, keeper=keeper)


def stdm_batch(keys: jax.Array, lead_mask: jax.Array, num_patches: int, **params) -> StdmDraw:
    """keys (b,), lead_mask (b, 12) -> StdmDraw with a leading b axis (one draw per example)."""
    return jax.vmap(lambda k, m: stdm_mask(k, m, num_patches, **params))(keys, lead_mask)
