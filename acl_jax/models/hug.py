"""HUG: the Hierarchical lead-Unified Group head of CLEAR-HUG (arXiv 2512.24002).

Mirrors the clinical reading order beat -> lead -> lead group -> diagnosis, on the beat-token
features of a CLEAR encoder (acl_jax.models.transformer.BeatTransformer):
    lead l:   h_l = sum_k a_{l,k} e_{l,k}      over the lead's VALID beats (R-peak present)
    group g:  z_g = sum_{l in g} a_{g,l} h_l   over the group's VALID leads (present and with at
                                              least one valid beat); groups = cfg.model.regions
    logits  = W [z_1; ...; z_R] + c            (B, C)
With pool="attention", a = masked softmax of a learned score w . e (one scorer per level, shared
by all leads / groups: "lead-unified"); with pool="mean", a = 1 / count. An empty set gives a
zero vector, so absent leads and groups contribute nothing to the logits. Leads in no region
(aVR in the default regions) do not reach the head.

`HugClassifier` wraps encoder + head as a `Trainable` (loss = the supervised global
mean, as acl_jax.eval.finetune.Classifier), for `--protocol hug` of the eval binary.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from acl_jax.leads import region_matrix
from acl_jax.models.encoder import MASKED
from acl_jax.models.heads import class_probabilities, classification_loss
from acl_jax.models.roles import Trainable


def _pool(scores, feats, valid):
    """scores (..., S), feats (..., S, D), valid (..., S) bool -> (..., D); empty sets -> 0."""
    w = jax.nn.softmax(jnp.where(valid, scores, MASKED), axis=-1) * valid
    return jnp.einsum("...s,...sd->...d", w, feats)


class HugHead(nnx.Module):
    """beats (B, 12, K, D), beat_valid (B, 12, K), lead_mask (B, 12) -> logits (B, C)."""

    def __init__(self, dim: int, num_classes: int, regions: str, *, pool="attention", rngs):
        if pool not in ("attention", "mean"):
            raise ValueError(f"HUG pool={pool!r}: choose attention or mean")
        self.pool, self.dim, self.regions = pool, dim, regions
        self.num_regions = int(region_matrix(regions).shape[0])
        self.beat_score = nnx.Linear(dim, 1, rngs=rngs)
        self.lead_score = nnx.Linear(dim, 1, rngs=rngs)
        self.out = nnx.Linear(self.num_regions * dim, num_classes, rngs=rngs)

    def _scores(self, layer, feats):
        if self.pool == "mean":
            return jnp.zeros(feats.shape[:-1], jnp.float32)  # softmax of equal scores = mean
        return layer(feats)[..., 0]

    def groups(self, beats, beat_valid, lead_mask):
        """-> (group features (B, R, D), group_valid (B, R) bool, lead_valid (B, 12) bool)."""
        if beats.ndim != 4 or beats.shape[-1] != self.dim or beats.shape[:3] != beat_valid.shape:
            raise ValueError(
                f"HUG expects beats (B, 12, K, {self.dim}) and beat_valid "
                f"(B, 12, K), got {beats.shape}, {beat_valid.shape}"
            )
        beat_valid = (beat_valid > 0) & (lead_mask > 0)[:, :, None]
        beats = jnp.where(beat_valid[..., None], beats, 0.0)  # NaN-safe: never reach the sum
        leads = _pool(self._scores(self.beat_score, beats), beats, beat_valid)  # (B, 12, D)
        lead_valid = beat_valid.any(axis=-1)
        member = jnp.asarray(region_matrix(self.regions)) > 0  # (R, 12)
        in_group = member[None] & lead_valid[:, None, :]  # (B, R, 12)
        scores = self._scores(self.lead_score, leads)  # (B, 12)
        groups = _pool(
            jnp.broadcast_to(scores[:, None], in_group.shape),
            jnp.broadcast_to(leads[:, None], (*in_group.shape, self.dim)),
            in_group,
        )
        return groups, in_group.any(axis=-1), lead_valid

    def __call__(self, beats, beat_valid, lead_mask):
        groups, _, _ = self.groups(beats, beat_valid, lead_mask)
        return self.out(groups.reshape(groups.shape[0], -1))


def hug_features(encoder, x, lead_mask, rpeaks):
    """A CLEAR encoder's HUG inputs: (beats (B, 12, K, D), beat_valid (B, 12, K), lead_mask)."""
    if not encoder.beat_tokens:
        raise ValueError(
            f"--protocol hug needs a heartbeat-token encoder (objective 'clear'), got "
            f"{type(encoder).__name__}"
        )
    t = encoder.tokens(x, lead_mask, rpeaks)
    return t.beats, t.valid, t.lead_present.astype(jnp.float32)


class HugClassifier(Trainable):
    """CLEAR encoder -> beat tokens -> HugHead -> logits; trains with the pretraining step.

    `freeze_encoder`: features pass through stop_gradient, so the encoder gets zero gradients
    (restrict the optimizer to the head, or use no weight decay, to keep its weights exact).
    """

    def __init__(
        self,
        encoder,
        num_classes: int,
        single: bool,
        regions: str,
        *,
        pool="attention",
        freeze_encoder=False,
        rngs: nnx.Rngs,
    ):
        self.encoder = encoder
        self.head = HugHead(encoder.dim, num_classes, regions, pool=pool, rngs=rngs)
        self.single = single  # softmax cross-entropy instead of per-class BCE
        self.freeze_encoder = freeze_encoder

    def __call__(self, x, lead_mask, rpeaks):
        beats, valid, mask = hug_features(self.encoder, x, lead_mask, rpeaks)
        if self.freeze_encoder:
            beats = jax.lax.stop_gradient(beats)
        return self.head(beats, valid, mask)

    def loss(self, batch: dict, keys: jax.Array, axis_name: str | None):
        """Global mean of BCE (mean over classes) or softmax CE over the batch's rows."""
        del keys
        logits = self(batch["signal"], batch["lead_mask"], batch["rpeaks"])
        return classification_loss(logits, batch["labels"], self.single, axis_name)


def hug_probabilities(model: HugClassifier, x, lead_mask, rpeaks):
    """(b, C) sigmoid (multi-label) or softmax (single-label) probabilities."""
    return class_probabilities(model(x, lead_mask, rpeaks), model.single)
