"""3KG: random rotation and scaling of the heart's electrical axis in vectorcardiogram space.

Gopal et al. 2021, "3KG: Contrastive Learning of 12-Lead ECGs using Physiologically-Inspired
Augmentations" (PMLR 158). The 8 independent leads (I, II, V1-V6) are mapped to the 3-D
vectorcardiogram (X, Y, Z) with the inverse Dower transform, rotated and scaled there (a
different heart orientation / size), mapped back with the Dower transform, and the 4 limb leads
III, aVR, aVL, aVF are re-derived from I and II.

Coefficients:
- Dower transform (VCG -> V1..V6, I, II): G. E. Dower, H. B. Machado, J. A. Osborne, "On
  deriving the electrocardiogram from vectorcardiographic leads", Clin. Cardiol. 3(2):87-95,
  1980.
- Inverse Dower transform (V1..V6, I, II -> VCG): L. Edenbrandt, O. Pahlm, "Vectorcardiogram
  synthesized from a 12-lead ECG: superiority of the inverse Dower matrix", J. Electrocardiol.
  21(4):361-367, 1988.
The published inverse is the pseudo-inverse of the Dower matrix to three decimals, so
Dower(inverse Dower(ecg)) reproduces an ECG in the Dower subspace to about 1e-3 relative.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from acl_jax.augment.view import View
from acl_jax.leads import LEAD_INDEX

# The independent leads, in the column order of the matrices below.
INDEPENDENT = ("V1", "V2", "V3", "V4", "V5", "V6", "I", "II")
INDEPENDENT_IDX = np.array([LEAD_INDEX[n] for n in INDEPENDENT])

# (8, 3): rows V1..V6, I, II; columns X, Y, Z (Dower et al. 1980).
DOWER = np.array(
    [
        [-0.515, 0.157, -0.917],
        [0.044, 0.164, -1.387],
        [0.882, 0.098, -1.277],
        [1.213, 0.127, -0.601],
        [1.125, 0.127, -0.086],
        [0.831, 0.076, 0.230],
        [0.632, -0.235, 0.059],
        [0.235, 1.066, -0.132],
    ],
    np.float32,
)

# (3, 8): rows X, Y, Z; columns V1..V6, I, II (Edenbrandt & Pahlm 1988).
INVERSE_DOWER = np.array(
    [
        [-0.172, -0.074, 0.122, 0.231, 0.239, 0.194, 0.156, -0.010],
        [0.057, -0.019, -0.106, -0.022, 0.041, 0.048, -0.227, 0.887],
        [-0.229, -0.310, -0.246, -0.063, 0.055, 0.108, 0.022, 0.102],
    ],
    np.float32,
)


def _expand_matrix() -> np.ndarray:
    """(12, 8): 12 canonical leads from (V1..V6, I, II) by Einthoven and Goldberger."""
    m = np.zeros((12, 8), np.float32)
    col = {n: i for i, n in enumerate(INDEPENDENT)}
    for name in INDEPENDENT:
        m[LEAD_INDEX[name], col[name]] = 1.0
    i, ii = col["I"], col["II"]
    m[LEAD_INDEX["III"], [i, ii]] = [-1.0, 1.0]  # III = II - I
    m[LEAD_INDEX["aVR"], [i, ii]] = [-0.5, -0.5]  # aVR = -(I + II) / 2
    m[LEAD_INDEX["aVL"], [i, ii]] = [1.0, -0.5]  # aVL = I - II / 2
    m[LEAD_INDEX["aVF"], [i, ii]] = [-0.5, 1.0]  # aVF = II - I / 2
    return m


# (12, 3): VCG -> all 12 canonical leads.
DOWER_12 = _expand_matrix() @ DOWER


def vcg_to_ecg(vcg: jax.Array) -> jax.Array:
    """(3, T) vectorcardiogram -> (12, T) ECG in canonical lead order (Dower transform)."""
    return jnp.asarray(DOWER_12) @ vcg


def ecg_to_vcg(x: jax.Array) -> jax.Array:
    """(12, T) ECG -> (3, T) vectorcardiogram from I, II, V1-V6 (inverse Dower transform)."""
    return jnp.asarray(INVERSE_DOWER) @ x[INDEPENDENT_IDX]


def rotation_matrix(angles: jax.Array) -> jax.Array:
    """(3,) angles in radians about X, Y, Z -> (3, 3) rotation Rz @ Ry @ Rx."""
    c, s = jnp.cos(angles), jnp.sin(angles)
    one, zero = jnp.ones(()), jnp.zeros(())
    rx = jnp.array([[one, zero, zero], [zero, c[0], -s[0]], [zero, s[0], c[0]]])
    ry = jnp.array([[c[1], zero, s[1]], [zero, one, zero], [-s[1], zero, c[1]]])
    rz = jnp.array([[c[2], -s[2], zero], [s[2], c[2], zero], [zero, zero, one]])
    return rz @ ry @ rx


def vcg_transform(x: jax.Array, rotation: jax.Array, scale: jax.Array) -> jax.Array:
    """(12, T) -> (12, T): Dower(diag(scale) @ rotation @ inverse Dower(x)).

    The three matrices fold into one (12, 8) matrix, so the per-sample cost is one small
    matmul whatever the batch.
    """
    m = jnp.asarray(DOWER_12) @ (scale[:, None] * rotation) @ jnp.asarray(INVERSE_DOWER)
    return m @ x[INDEPENDENT_IDX]


def vcg_rotate_scale(
    key: jax.Array, view: View, *, max_angle: float, scale_min: float, scale_max: float
) -> View:
    """3KG view: rotate the VCG by angles U[-max_angle, max_angle] degrees about each axis and
    scale each axis by U[scale_min, scale_max]; x: (12, W) -> (12, W).

    The inverse Dower transform needs all 8 independent leads; when any of them is absent the
    VCG estimate would be wrong, so such views pass through unchanged. Leads absent from the
    input stay zero (the output is multiplied by lead_mask).
    """
    k_rot, k_scale = jax.random.split(key)
    limit = math.radians(max_angle)
    angles = jax.random.uniform(k_rot, (3,), jnp.float32, -limit, limit)
    scale = jax.random.uniform(k_scale, (3,), jnp.float32, scale_min, scale_max)
    out = vcg_transform(view.x, rotation_matrix(angles), scale) * view.lead_mask[:, None]
    usable = jnp.all(view.lead_mask[INDEPENDENT_IDX] > 0)
    x = jnp.where(usable, out, view.x).astype(view.x.dtype)
    return View(x, view.rpeaks, view.lead_mask)
