"""CoRe-ECG: contrastive + reconstructive pretraining in one model (Qin et al., arXiv 2604.11359).

Only the abstract of the paper was available to us; every detail below not in it is our
documented choice.

Views. Each example's key is split into 6: A_a, A_b (cfg.augment.ops, the identity when
empty), F_a, F_b (Frequency Dynamic Augmentation, acl_jax.augment.frequency, with this
module's fda_* settings), S_a, S_b (Spatio-Temporal Dual Masking, acl_jax.objectives.stdm).
For view v: pre^v = A_v(x) (the reconstruction target), in^v = FDA(pre^v) (the encoder
input), M^v the STDM mask over its (12, P) patch tokens. The target is the view BEFORE FDA:
FDA's perturbation is a corruption to undo, like the mask.

Encoder (CoreEncoder, on the "transformer" backbone: PatchTransformer with D = widths[-1],
depth = sum(blocks)): token (l, t) = Linear(in[l, t p : (t+1) p]) + lead embedding_l +
sinusoid(t p), p = `patch` samples, T zero-padded to P p. Masked tokens are DROPPED from
attention (MAE semantics through the boolean key mask: no token attends to a masked one, so
their content reaches no visible output; their own outputs are unused) rather than replaced
by a mask token: the encoder then never sees a token it will not see at evaluation. Absent
leads are never attended to either. g = mean of the outputs over visible present tokens (at
evaluation nothing is masked: the mean over present tokens), z = MLPHead(g).

Decoder (CoreDecoder): e_{l,t} = (h_{l,t} if visible else m) + E_l + sinusoid(t p)
+ C sg(g^other), m a learned mask token, E a decoder lead embedding (12, D), C Linear(D, D),
sg the stop-gradient; then acl_jax.models.transformer.Decoder (Linear D -> decoder_dim,
decoder_depth blocks over present tokens, Linear -> p) predicts every patch. Guidance: view
a's decoder gets sg(g^b) and view b's gets sg(g^a), the instance representation aligned
across views by L_con, so instance-level information guides local recovery ("aligns global
representations during reconstruction"); the stop-gradient keeps L_rec from pulling the
other view's representation toward reconstruction details.

Loss, over the GLOBAL batch of N examples (M = masked present tokens of both views, all
devices; L = p samples per patch):
    L_rec = (1 / |M|) sum_{(v, n, l, t) in M} (1 / L) ||pred^v_{n,l,t} - pre^v_{n,l,t}||^2
    L_con = NT-Xent(z^a, z^b; tau = cfg.loss.temperature)  (acl_jax.objectives.ntxent)
    L     = w_rec L_rec + w_con L_con,   defaults w_rec = w_con = 1
L_rec (clear.reconstruction_loss) and L_con are psum-based global means, identical on every
device. Weights: the paper's are not available; equal weights treat the two terms as equal
partners, as the abstract does. They are NOT tuned, and the scales differ: on the PTB-XL
sample with a tiny model (batch 16) L_rec (mV^2) went 0.85 -> 0.55 in 12 steps while L_con
stayed 4-7 (log(2N - 1) = 3.4 at N = 16), so w_rec is the first knob to tune.
`norm_target` (off) standardizes each target patch as in MAE; off because amplitude is
diagnostic.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from acl_jax.augment import make_augment, view_from_batch
from acl_jax.augment.frequency import FdaParams, fda
from acl_jax.config import Config, CoreEcgConfig
from acl_jax.models import MLPHead
from acl_jax.models.core import CoreDecoder, CoreEncoder, masked_mean
from acl_jax.models.roles import Trainable
from acl_jax.objectives.clear import reconstruction_loss
from acl_jax.objectives.ntxent import nt_xent_with_metrics
from acl_jax.objectives.stdm import stdm_batch


def fda_params(c: CoreEcgConfig) -> FdaParams:
    """FDA settings of `c` as the augmentation's parameter struct."""
    return FdaParams(
        band_edges_hz=c.fda_band_edges_hz,
        importance=c.fda_importance,
        jitter=c.fda_jitter,
        drop_prob=c.fda_drop_prob,
    )


def stdm_params(c: CoreEcgConfig) -> dict:
    """STDM keyword arguments of `c` for `stdm_batch`."""
    return {
        "time_ratio": c.time_ratio,
        "span": c.span,
        "lead_prob": c.lead_prob,
        "keep_one_prob": c.keep_one_prob,
    }


def core_ecg_loss(pred, target, masked, z1, z2, *, core: CoreEcgConfig, temperature, axis_name):
    """pred, target (n, 12, P, L) (both views stacked), masked (n, 12, P) bool, z1, z2 (b, P')
    -> (L, metrics): L = w_rec L_rec + w_con L_con (module docstring), global over devices."""
    rec, rec_m = reconstruction_loss(pred, target, masked, core.norm_target, axis_name)
    con, con_m = nt_xent_with_metrics(z1, z2, temperature, axis_name)
    loss = core.w_rec * rec + core.w_con * con
    metrics = {"loss_recon": rec, "loss_contrast": con, "acc": con_m["acc"]}
    return loss, {**metrics, "num_masked": rec_m["num_masked"]}


class CoreEcg(Trainable):
    """CoRe-ECG pretrainer: CoreEncoder + projection head + guided decoder (module docstring)."""

    def __init__(self, cfg: Config, *, fs: int, bn_axis: str | None, rngs: nnx.Rngs):
        c = cfg.core_ecg
        self.encoder = CoreEncoder(cfg.model, c, rngs=rngs)
        m = cfg.model
        self.head = MLPHead(self.encoder.dim, m.proj_hidden, m.proj_dim, bn_axis=bn_axis, rngs=rngs)
        self.decoder = CoreDecoder(self.encoder.dim, c, rngs=rngs)
        self._augment = make_augment(cfg.augment, fs)
        self._fda = functools.partial(fda, fs=fs, params=fda_params(c))
        self._core = c
        self._temperature = cfg.loss.temperature

    def views(self, batch: dict, keys: jax.Array):
        """keys (b,) -> (pre, inp) Views with x (2b, 12, W) (view a then b) and STDM keys (2b,)."""
        k = jax.vmap(lambda key: jax.random.split(key, 6))(keys)
        view = view_from_batch(batch)
        augment = jax.vmap(self._augment)
        va, vb = augment(k[:, 0], view), augment(k[:, 1], view)
        pre = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), va, vb)
        inp = jax.vmap(self._fda)(jnp.concatenate([k[:, 2], k[:, 3]]), pre)
        return pre, inp, jnp.concatenate([k[:, 4], k[:, 5]])

    def forward(self, batch: dict, keys: jax.Array):
        """-> (pred, target (2b, 12, P, patch), masked (2b, 12, P), z_a, z_b (b, proj_dim))."""
        b = keys.shape[0]
        pre, inp, mask_keys = self.views(batch, keys)
        p = self.encoder.num_patches(inp.x.shape[-1])
        masked = stdm_batch(mask_keys, inp.lead_mask, p, **stdm_params(self._core)).masked
        h, visible = self.encoder.tokens(inp.x, inp.lead_mask, masked)
        g = masked_mean(h, visible)  # (2b, D)
        za, zb = self.head(g[:b]), self.head(g[b:])  # per view, as SimCLR: BN stats per view
        guide = jax.lax.stop_gradient(jnp.concatenate([g[b:], g[:b]]))  # the OTHER view's g
        pred = self.decoder(h, visible, inp.lead_mask > 0, guide)
        target = self.encoder.patches(pre.x, pre.lead_mask)
        return pred, target, masked, za, zb

    def loss(self, batch: dict, keys: jax.Array, axis_name: str | None):
        pred, target, masked, za, zb = self.forward(batch, keys)
        return core_ecg_loss(
            pred,
            target,
            masked,
            za,
            zb,
            core=self._core,
            temperature=self._temperature,
            axis_name=axis_name,
        )
