"""ECG encoder: a backbone from a small registry, in lead-wise or plain (12-channel) mode.

Lead-wise mode (`cfg.lead_wise`): one shared single-lead backbone encodes every lead of
x (B, 12, T) as a (B*12, 1, T) batch; a learned lead embedding (12, D) is added so that
downstream heads can tell leads apart after pooling. Features are then pooled by MASKED MEAN:
regions (B, R, D) over each region's present leads (`acl_jax.leads.region_matrix`), global
(B, D) over all present leads. A mean is permutation-invariant over the leads it pools (the
lead identity lives in the embedding, not in the position) and is an average of however many
leads are present, so a missing lead (lead_mask 0, from the dataset or from lead-dropout
augmentation) changes the pool's support but not its scale; absent leads are also excluded
from BatchNorm statistics (`MaskedBatchNorm`), so their contents never reach any output.
A region with no present lead yields zeros and `region_mask` 0. With cfg.region_embed False
the regions pool the backbone's features WITHOUT the embedding (leads and global keep it): the
embedding alone already separates regions, which makes ACL-ECG's inter-region term trivial.
`encoder(x, lead_mask, raw_regions=True)` gives BOTH sets: `regions` as configured and
`regions_raw`, pooled without the embedding (for a loss term that must not see the lead
identity while the other terms keep it); it is computed only when asked.

Lead subset (`cfg.leads`, lead-wise mode only): a comma list of lead names, e.g. the 8
independent leads "I,II,V1,V2,V3,V4,V5,V6". Only those leads are gathered (a static index) and
encoded, (B*L, 1, T) with L = len(subset); every other lead is treated as absent whatever its
lead_mask says: never computed, zero in `leads`, out of every pool. With shared weights this gives
the same features as the full model with those leads masked absent (BatchNorm already skips
absent rows), at L/12 of the backbone cost. Empty (the default) encodes all 12.
`encoded_mask(lead_mask)` gives the effective (B, 12) mask for consumers of `Features.leads`.

Plain mode: one 12-channel backbone; absent leads are zeroed; global features only.

Backbones: `BACKBONES` maps `cfg.arch` to a factory
`(in_channels, cfg, *, bn_axis, rngs, **options) -> module` whose module has `.dim` and maps
(N, C, T) plus an optional (N,) BatchNorm row mask to (N, dim) float32. Another backbone slots
in with `register_backbone("name", factory)`. A backbone may also provide
`features_map(x, mask) -> (N, T', dim)`, its per-time features before the pool, which
`ECGEncoder.features_map` exposes for dense tasks (LUDB wave segmentation in acl_jax.eval).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from acl_jax.config import ModelConfig
from acl_jax.leads import LEAD_INDEX, NUM_LEADS, canonical_lead, region_matrix
from acl_jax.models.resnet1d import ResNet1d
from acl_jax.models.roles import Encoder

# Masked logits use a large finite negative, not -inf: exp() underflows to exactly 0, so the
# softmax and its gradient ignore them, and a row with every entry masked stays finite.
MASKED = -1e9


class Features(NamedTuple):
    """Encoder outputs, all float32. D = encoder.dim, R = encoder.num_regions."""

    global_: jax.Array  # (B, D)
    leads: jax.Array | None = None  # (B, 12, D), zeros at absent leads; lead-wise mode only
    regions: jax.Array | None = None  # (B, R, D), zeros for regions with no present lead
    region_mask: jax.Array | None = None  # (B, R) float32, 1 where the region has a lead
    # (B, R, D) regions pooled WITHOUT the lead embedding; only with raw_regions=True
    regions_raw: jax.Array | None = None


def _resnet1d(in_channels: int, cfg: ModelConfig, *, bn_axis, rngs, **options):
    return ResNet1d(
        in_channels,
        cfg.widths,
        cfg.blocks,
        cfg.kernel,
        dtype=cfg.dtype,
        bn_axis=bn_axis,
        stem_stride=cfg.stem_stride,
        stem_kernel=cfg.stem_kernel,
        rngs=rngs,
        **options,
    )


BACKBONES: dict[str, Callable[..., nnx.Module]] = {"resnet1d": _resnet1d}


def register_backbone(name: str, factory: Callable[..., nnx.Module]) -> None:
    """Makes `cfg.arch == name` build `factory(in_channels, cfg, bn_axis=, rngs=, **options)`."""
    if name in BACKBONES:
        raise ValueError(f"backbone {name!r} is already registered")
    BACKBONES[name] = factory


@functools.lru_cache(maxsize=16)
def _regions(spec: str) -> np.ndarray:
    # Cached, and kept out of the module state: a constant, not a parameter or statistic.
    return region_matrix(spec)


def lead_subset(spec: str) -> tuple[int, ...]:
    """`cfg.leads` ("I,II,V1" or "" = all) -> sorted canonical lead indices, with clear errors."""
    if not spec.strip():
        return tuple(range(NUM_LEADS))
    idx = []
    for name in spec.split(","):
        canon = canonical_lead(name)
        if canon is None:
            raise ValueError(
                f"model.leads={spec!r}: {name.strip()!r} is not a 12-lead name "
                "(use e.g. I,II,V1,V2,V3,V4,V5,V6; empty = all 12)"
            )
        idx.append(LEAD_INDEX[canon])
    if len(set(idx)) != len(idx):
        raise ValueError(f"model.leads={spec!r} names a lead twice")
    return tuple(sorted(idx))


def masked_pool(feats, weights):
    """Weighted mean: feats (B, L, D), weights (B, K, L) 0/1 -> ((B, K, D), count (B, K)).

    Rows whose weights are all zero give zeros (not NaN).
    """
    count = jnp.sum(weights, axis=-1)
    total = jnp.einsum("bkl,bld->bkd", weights, feats)
    return total / jnp.maximum(count, 1.0)[..., None], count


class ECGEncoder(Encoder):
    """x (B, 12, T) float32 mV, lead_mask (B, 12) 0/1 -> `Features` (see the module docstring).

    `backbone_options` are passed to the backbone factory (e.g. {"layout": "ncw"} for
    resnet1d); the defaults are the measured-fastest choices.
    """

    def __init__(
        self,
        cfg: ModelConfig,
        *,
        bn_axis: str | None = None,
        backbone_options: dict | None = None,
        rngs: nnx.Rngs,
    ):
        if cfg.arch not in BACKBONES:
            raise ValueError(
                f"model.arch={cfg.arch!r} is not a known backbone; valid: {sorted(BACKBONES)} "
                "(set --config.model.arch)"
            )
        factory = BACKBONES[cfg.arch]
        options = dict(backbone_options or {})
        self.lead_wise = cfg.lead_wise
        self.region_spec = cfg.regions
        self.region_embed = cfg.region_embed
        self.subset = lead_subset(cfg.leads)
        if not cfg.lead_wise and len(self.subset) != NUM_LEADS:
            raise ValueError(
                f"model.leads={cfg.leads!r} needs model.lead_wise=True (the plain encoder takes "
                "all 12 channels; mark leads absent in lead_mask instead)"
            )
        in_channels = 1 if cfg.lead_wise else NUM_LEADS
        self.backbone = factory(in_channels, cfg, bn_axis=bn_axis, rngs=rngs, **options)
        self.dim = self.backbone.dim
        if cfg.lead_wise:
            self.num_regions = int(_regions(cfg.regions).shape[0])
            init = jax.nn.initializers.normal(0.02)
            self.lead_embed = nnx.Param(init(rngs.params(), (NUM_LEADS, self.dim), jnp.float32))
        else:
            self.num_regions = 0

    def _inputs(self, x, lead_mask):
        """Checks shapes; -> (x with absent leads zeroed, present (B, 12) bool, mask float)."""
        if x.ndim != 3 or x.shape[1] != NUM_LEADS:
            raise ValueError(f"ECGEncoder expects x of shape (B, 12, T), got {x.shape}")
        if lead_mask.shape != x.shape[:2]:
            raise ValueError(f"lead_mask must be (B, 12) = {x.shape[:2]}, got {lead_mask.shape}")
        present = lead_mask > 0
        if len(self.subset) < NUM_LEADS:  # leads outside cfg.leads count as absent
            present = present & jnp.asarray(self._selected())
        # where, not multiply: an absent lead's NaN or garbage must not leak into anything.
        x = jnp.where(present[..., None], x, 0.0).astype(jnp.float32)
        return x, present, present.astype(jnp.float32)

    def _selected(self) -> np.ndarray:
        """(12,) bool: the leads this encoder computes (cfg.leads)."""
        return np.isin(np.arange(NUM_LEADS), self.subset)

    def encoded_mask(self, lead_mask):
        """(B, 12) lead_mask restricted to the encoded leads (cfg.leads): the leads that are
        present AND computed, i.e. where `Features.leads` holds real features."""
        return jnp.where(jnp.asarray(self._selected()), (lead_mask > 0).astype(jnp.float32), 0.0)

    def _encode_leads(self, fn, x, present, mask):
        """Runs `fn` (the backbone or its features_map) on the encoded leads only:
        x (B, 12, T) -> (B, L, ...) features + lead embedding, zero at absent leads, with the
        subset's (present (B, L), mask (B, L), index (L,)) and the features without the
        embedding (B, L, ...) (for model.region_embed=False)."""
        idx = np.asarray(self.subset)
        if len(idx) < NUM_LEADS:  # a static gather: the other leads are never computed
            x, present, mask = x[:, idx], present[:, idx], mask[:, idx]
        b, n_leads, t = x.shape
        h = fn(x.reshape(b * n_leads, 1, t), mask.reshape(-1))
        h = h.reshape(b, n_leads, *h.shape[1:])
        embed = self.lead_embed[...]
        if n_leads < NUM_LEADS:
            embed = embed[idx]
        keep = present.reshape(*present.shape, *(1,) * (h.ndim - 2))
        raw = jnp.where(keep, h, 0.0)
        h = h + embed.reshape(n_leads, *(1,) * (h.ndim - 3), self.dim)
        return jnp.where(keep, h, 0.0), present, mask, idx, raw

    @property
    def dense(self) -> bool:
        # Backbones are registered factories; those with a per-time map define features_map.
        return hasattr(self.backbone, "features_map")

    def features_map(self, x, lead_mask) -> jax.Array:
        """Per-time features for dense tasks (e.g. wave segmentation): (B, 12, T) -> (B, T', D).

        The backbone's feature map before its global pool (its `features_map`, e.g.
        ResNet1d.features_map; T' = the backbone's output length). Lead-wise mode: each lead's
        map plus its lead embedding, then the mean over PRESENT leads (as `global_` is a mean
        over present leads), so one map describes the whole record at every time step.
        """
        if not self.dense:
            raise ValueError(
                f"backbone {type(self.backbone).__name__} (model.arch) has no features_map: "
                "per-time features need a backbone that provides one (e.g. resnet1d)"
            )
        x, present, mask = self._inputs(x, lead_mask)
        if not self.lead_wise:
            return self.backbone.features_map(x)
        h, _, mask, _, _ = self._encode_leads(self.backbone.features_map, x, present, mask)
        weights = mask / jnp.maximum(mask.sum(axis=1, keepdims=True), 1.0)
        return jnp.einsum("bl,bltd->btd", weights, h)

    def __call__(self, x, lead_mask, *, raw_regions: bool = False) -> Features:
        """`raw_regions` (static): also return `Features.regions_raw` (lead-wise mode only)."""
        x, present, mask = self._inputs(x, lead_mask)
        if not self.lead_wise:
            if raw_regions:
                raise ValueError("raw_regions needs the lead-wise encoder (model.lead_wise=true)")
            return Features(global_=self.backbone(x))
        h, present, mask, idx, raw = self._encode_leads(self.backbone, x, present, mask)
        membership = jnp.asarray(_regions(self.region_spec)[:, idx])  # (R, L)
        weights = membership[None] * mask[:, None, :]
        pooled = h if self.region_embed else raw
        regions, count = masked_pool(pooled, weights)
        regions_raw = masked_pool(raw, weights)[0] if raw_regions else None
        global_, _ = masked_pool(h, mask[:, None, :])
        leads = h
        if len(idx) < NUM_LEADS:
            leads = jnp.zeros((h.shape[0], NUM_LEADS, self.dim), h.dtype).at[:, idx].set(h)
        return Features(
            global_=global_[:, 0],
            leads=leads,
            regions=regions,
            region_mask=(count > 0).astype(jnp.float32),
            regions_raw=regions_raw,
        )
