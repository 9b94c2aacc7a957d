"""PyTorch twin of acl_jax's ACL-ECG pretraining step, for side-by-side throughput (bench only).

An independent implementation of the same computation as `acl_jax.objectives.acl_ecg.AclEcg`
inside `acl_jax.train.step.make_train_step`:
  * augmentations (default chain, batched here instead of vmapped): scale_crop, cycle_mask,
    time_shift, gaussian_noise, two independent views per record;
  * encoder: one shared single-lead ResNet1d (stem conv of stride `model.stem_stride`, width
    `model.stem_kernel` or `kernel`, + BN + ReLU + max-pool 3/2, basic blocks, stride 2 at each
    later stage, time mean) over (B*L, 1, T), L = the leads in `model.leads` (all 12 when
    empty; the others are never computed, as in acl_jax), a learned lead embedding (12, D),
    masked mean pooling into regions (B, R, D) and global (B, D);
    every BatchNorm excludes absent leads from its statistics (as MaskedBatchNorm does);
  * heads: Linear (no bias) -> BatchNorm -> ReLU -> Linear, one global and one region head;
  * loss: global NT-Xent + w_intra * intra-region + w_inter * inter-region (formulas in
    acl_jax/objectives/acl_ecg.py), masked logits -1e9;
  * optimizer: global-norm clipping then AdamW, weight decay on >= 2-D parameters only.
Layout is PyTorch's native channels-first (N, C, T). Odd-width convolutions pad k // 2 on both
sides where XLA's SAME pads asymmetrically for stride 2: output lengths are identical
(ceil(T / stride)), the sampling grid is shifted by one sample, which changes nothing in cost; an
even-width stem pads explicitly as SAME does, so lengths match there too. The learning-rate schedule
is a constant (a schedule costs nothing measurable).

`TorchShards` is a map-style Dataset over the prepared ArrayRecord shards (decoded with
`acl_jax.data.record.decode`, random crop) for a standard `torch.utils.data.DataLoader`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from acl_jax.config import Config
from acl_jax.data.record import UV_PER_MV, decode
from acl_jax.leads import LEAD_INDEX, canonical_lead, region_matrix

MASKED = -1e9


class MaskedBN(nn.Module):
    """BatchNorm over dim 1 of (N, C, ...) whose statistics skip rows with mask 0 (N,)."""

    def __init__(self, c: int, momentum: float = 0.99, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.register_buffer("mean", torch.zeros(c))
        self.register_buffer("var", torch.ones(c))
        self.momentum, self.eps = momentum, eps

    def forward(self, x, mask=None):
        red = [0, *range(2, x.ndim)]
        per_row = x[0, 0].numel()
        if mask is None:
            s1, s2 = x.sum(red), (x * x).sum(red)
            n = torch.tensor(float(x.shape[0] * per_row))
        else:
            w = mask.reshape(-1, *[1] * (x.ndim - 1))
            xw = x * w
            s1, s2, n = xw.sum(red), (xw * x).sum(red), mask.sum() * per_row
        safe_n = n.clamp(min=1.0)
        mean = s1 / safe_n
        var = (s2 / safe_n - mean * mean).clamp(min=0.0)
        with torch.no_grad():  # running statistics stay put when no row is present
            m, keep = self.momentum, n > 0
            self.mean.copy_(torch.where(keep, m * self.mean + (1 - m) * mean, self.mean))
            self.var.copy_(torch.where(keep, m * self.var + (1 - m) * var, self.var))
        mul = torch.rsqrt(var + self.eps) * self.weight
        shift = self.bias - mean * mul
        shape = [1, -1] + [1] * (x.ndim - 2)
        return x * mul.reshape(shape) + shift.reshape(shape)


class ConvBN(nn.Module):
    def __init__(self, c_in, c_out, k, stride):
        super().__init__()
        self.k, self.stride, self.even = k, stride, k % 2 == 0
        pad = 0 if self.even else k // 2
        self.conv = nn.Conv1d(c_in, c_out, k, stride, padding=pad, bias=False)
        nn.init.kaiming_normal_(self.conv.weight)
        self.bn = MaskedBN(c_out)

    def forward(self, x, mask):
        if self.even:  # SAME: ceil(T / stride) outputs, the extra pad on the right
            t = x.shape[-1]
            total = max((-(-t // self.stride) - 1) * self.stride + self.k - t, 0)
            x = F.pad(x, (total // 2, total - total // 2))
        return self.bn(self.conv(x), mask)


class Block(nn.Module):
    def __init__(self, c_in, c_out, k, stride):
        super().__init__()
        self.a, self.b = ConvBN(c_in, c_out, k, stride), ConvBN(c_out, c_out, k, 1)
        self.proj = ConvBN(c_in, c_out, 1, stride) if stride != 1 or c_in != c_out else None

    def forward(self, x, mask):
        h = self.b(F.relu(self.a(x, mask)), mask)
        return F.relu(h + (x if self.proj is None else self.proj(x, mask)))


class ResNet1d(nn.Module):
    """(N, 1, T) -> (N, widths[-1])."""

    def __init__(self, widths, blocks, k, stem_stride=2, stem_kernel=0):
        super().__init__()
        self.stem = ConvBN(1, widths[0], stem_kernel or k, stem_stride)
        layers, c = [], widths[0]
        for stage, (w, n) in enumerate(zip(widths, blocks)):
            for j in range(n):
                layers.append(Block(c, w, k, 2 if stage > 0 and j == 0 else 1))
                c = w
        self.layers = nn.ModuleList(layers)
        self.dim = widths[-1]

    def forward(self, x, mask):
        h = F.max_pool1d(F.relu(self.stem(x, mask)), 3, 2, padding=1)
        for layer in self.layers:
            h = layer(h, mask)
        return h.mean(dim=2)


class Encoder(nn.Module):
    """x (B, 12, T), lead_mask (B, 12) -> (global (B, D), regions (B, R, D), region_mask (B, R))."""

    def __init__(self, cfg: Config):
        super().__init__()
        m = cfg.model
        self.backbone = ResNet1d(m.widths, m.blocks, m.kernel, m.stem_stride, m.stem_kernel)
        self.dim = self.backbone.dim
        self.lead_embed = nn.Parameter(0.02 * torch.randn(12, self.dim))
        names = [n for n in m.leads.split(",") if n.strip()]
        idx = sorted(LEAD_INDEX[canonical_lead(n)] for n in names) or list(range(12))
        self.register_buffer("idx", torch.tensor(idx))
        self.register_buffer("regions", torch.from_numpy(region_matrix(m.regions))[:, idx])

    def forward(self, x, lead_mask):
        if len(self.idx) < 12:  # encode the configured leads only
            x, lead_mask = x[:, self.idx], lead_mask[:, self.idx]
        present = lead_mask > 0
        mask = present.float()
        x = torch.where(present[..., None], x, 0.0)
        b, n_leads, t = x.shape
        h = self.backbone(x.reshape(b * n_leads, 1, t), mask.reshape(-1))
        h = h.reshape(b, n_leads, self.dim) + self.lead_embed[self.idx]
        leads = torch.where(present[..., None], h, 0.0)
        weights = self.regions[None] * mask[:, None, :]  # (B, R, L)
        count = weights.sum(-1)
        regions = torch.einsum("brl,bld->brd", weights, leads) / count.clamp(min=1.0)[..., None]
        global_ = leads.sum(1) / mask.sum(1).clamp(min=1.0)[:, None]
        return global_, regions, (count > 0).float()


class Head(nn.Module):
    def __init__(self, d_in, hidden, d_out):
        super().__init__()
        self.fc, self.bn = nn.Linear(d_in, hidden, bias=False), MaskedBN(hidden)
        self.out = nn.Linear(hidden, d_out)

    def forward(self, x):
        lead_shape = x.shape[:-1]
        h = F.relu(self.bn(self.fc(x.reshape(-1, x.shape[-1]))))
        return self.out(h).reshape(*lead_shape, -1)


def _info_nce(anchors, candidates, positive, mask, tau):
    """anchors (..., M, P), candidates (..., K, P), positive (M,), mask (..., M, K) ->
    (loss (..., M), correct (..., M))."""
    logits = torch.where(mask, anchors @ candidates.transpose(-1, -2) / tau, MASKED)
    pos = logits.gather(-1, positive.expand(*logits.shape[:-1])[..., None])[..., 0]
    return torch.logsumexp(logits, -1) - pos, logits.argmax(-1) == positive


def acl_ecg_loss(g1, g2, r1, r2, region_mask, cfg: Config):
    lc, tau = cfg.acl_ecg, cfg.loss.temperature
    n, num_r = r1.shape[:2]
    g = F.normalize(torch.cat([g1, g2]), dim=-1, eps=1e-12)  # (2N, P)
    idx = torch.arange(2 * n)
    not_self = idx[None, :] != idx[:, None]
    positive = (idx + n) % (2 * n)
    loss_g, _ = _info_nce(g, g, positive, not_self, tau)
    loss = lc.w_global * loss_g.mean()
    u = F.normalize(torch.cat([r1, r2]), dim=-1, eps=1e-12)  # (2N, R, P)
    valid = torch.cat([region_mask, region_mask]) > 0.5  # (2N, R)
    if lc.w_intra > 0:
        ur = u.transpose(0, 1)  # (R, 2N, P)
        mask = not_self[None] & valid.T[:, None, :]
        li, _ = _info_nce(ur, ur, positive, mask, tau)  # (R, 2N)
        va = valid.T.float()
        count = va.sum(1)
        per_region = (li * va).sum(1) / count.clamp(min=1.0)
        present = (count > 0).float()
        loss = loss + lc.w_intra * (per_region * present).sum() / present.sum().clamp(min=1.0)
    if lc.w_inter > 0:
        emb = torch.cat([u[:n], u[n:]], dim=1)  # (N, 2R, P)
        slot = torch.cat([region_mask, region_mask], dim=1) > 0.5  # (N, 2R)
        ridx = torch.arange(2 * num_r)
        mask = (ridx[None, :] != ridx[:, None])[None] & slot[:, None, :]
        lx, _ = _info_nce(emb, emb, (ridx + num_r) % (2 * num_r), mask, tau)
        slot_f = slot.float()
        loss = loss + lc.w_inter * (lx * slot_f).sum() / slot_f.sum().clamp(min=1.0)
    return loss


# ----------------------------------------------------------------------------- augmentations


def _pack(pos, keep):
    big = torch.iinfo(torch.int32).max
    s = torch.sort(torch.where(keep, pos, big), dim=-1).values
    return torch.where(s == big, -1, s).int()


def scale_crop(g, x, rp, min_scale):
    b, _, w = x.shape
    s = min_scale + (1 - min_scale) * torch.rand(b, generator=g)
    a = torch.rand(b, generator=g) * (w - 1) * (1 - s)
    pos = a[:, None] + torch.arange(w) * s[:, None]  # (B, W)
    i0 = pos.floor().long().clamp(0, w - 2)
    frac = (pos - i0)[:, None, :]
    idx = i0[:, None, :].expand(-1, x.shape[1], -1)
    x0, x1 = x.gather(2, idx), x.gather(2, idx + 1)
    mapped = torch.round((rp.float() - a[:, None]) / s[:, None]).int()
    keep = (rp >= 0) & (mapped >= 0) & (mapped <= w - 1)
    return x0 + frac * (x1 - x0), _pack(mapped, keep)


def cycle_mask(g, x, rp, prob, max_cycles):
    b, _, w = x.shape
    start, end = rp[:, :-1], rp[:, 1:]
    num = start.shape[1]
    picked = (start >= 0) & (end >= 0) & (torch.rand(b, num, generator=g) < prob)
    if max_cycles < num:
        score = torch.where(picked, torch.rand(b, num, generator=g), -1.0)
        rank = torch.argsort(torch.argsort(-score, dim=1), dim=1)
        picked = picked & (rank < max_cycles)
    t = torch.arange(w)[None, None, :]
    inside = ((start[..., None] <= t) & (t < end[..., None]) & picked[..., None]).any(1)
    return torch.where(inside[:, None, :], 0.0, x)


def time_shift(g, x, rp, max_frac):
    b, _, w = x.shape
    m = int(max_frac * w)
    n = torch.randint(-m, m + 1, (b,), generator=g)
    src = torch.remainder(torch.arange(w)[None, :] - n[:, None], w)
    x = x.gather(2, src[:, None, :].expand(-1, x.shape[1], -1))
    return x, _pack(torch.remainder(rp + n[:, None].int(), w).int(), rp >= 0)


def augment(g, x, rp, lead_mask, cfg: Config):
    """One view of a batch: x (B, 12, W) mV, rpeaks (B, K) int32, lead_mask (B, 12)."""
    a = cfg.augment
    for op in a.ops:
        if op == "scale_crop":
            x, rp = scale_crop(g, x, rp, a.scale_crop_min)
        elif op == "cycle_mask":
            x = cycle_mask(g, x, rp, a.cycle_mask_prob, a.cycle_mask_max)
        elif op == "time_shift":
            x, rp = time_shift(g, x, rp, a.time_shift_max)
        elif op == "gaussian_noise":
            x = x + a.noise_std * torch.randn(x.shape, generator=g) * lead_mask[..., None]
        else:
            raise ValueError(f"torch twin implements the default chain only, not {op!r}")
    return x, rp


class AclEcgTwin(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        m = cfg.model
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.global_head = Head(self.encoder.dim, m.proj_hidden, m.proj_dim)
        self.region_head = Head(self.encoder.dim, m.proj_hidden, m.proj_dim)

    def views(self, g, batch):
        x, rp, lm = batch["signal"], batch["rpeaks"], batch["lead_mask"]
        return augment(g, x, rp, lm, self.cfg)[0], augment(g, x, rp, lm, self.cfg)[0]

    def forward(self, g, batch):
        x1, x2 = self.views(g, batch)
        lm = batch["lead_mask"]
        g1, r1, m1 = self.encoder(x1, lm)
        g2, r2, m2 = self.encoder(x2, lm)
        return acl_ecg_loss(
            self.global_head(g1),
            self.global_head(g2),
            self.region_head(r1),
            self.region_head(r2),
            m1 * m2,
            self.cfg,
        )


def make_step(cfg: Config, seed: int = 0):
    """(model, step(batch) -> loss tensor): augment, forward, backward, clip, AdamW."""
    torch.manual_seed(seed)
    model = AclEcgTwin(cfg)
    params = [p for p in model.parameters()]
    groups = [
        {"params": [p for p in params if p.ndim > 1], "weight_decay": cfg.optim.weight_decay},
        {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=cfg.optim.lr)
    g = torch.Generator().manual_seed(seed)

    def step(batch):
        opt.zero_grad(set_to_none=True)
        loss = model(g, batch)
        loss.backward()
        if cfg.optim.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.optim.clip_norm)
        opt.step()
        return loss.detach()

    return model, step


def to_torch(batch: dict) -> dict:
    """A numpy pipeline batch -> the tensors the twin's step reads."""
    return {k: torch.from_numpy(np.asarray(batch[k])) for k in ("signal", "rpeaks", "lead_mask")}


class TorchShards(torch.utils.data.Dataset):
    """Map-style dataset over ArrayRecord shards: item i -> signal (12, W) f32 mV (random crop,
    zero-padded), rpeaks (K,) i32 window-relative (-1 padded), lead_mask (12,) f32.
    `drop_leads` lists lead indices to mark absent (zeroed, mask 0)."""

    def __init__(self, paths, window: int, max_beats: int, drop_leads=()):
        self.paths, self.window, self.max_beats = list(paths), window, max_beats
        self.drop = list(drop_leads)
        self._src = self._rng = None  # opened lazily: once per DataLoader worker process
        import grain  # noqa: F401 - fail early if missing

        self._len = len(self._open())
        self._src = None

    def _open(self):
        import grain

        return grain.sources.ArrayRecordDataSource(self.paths)

    def __len__(self):
        return self._len

    def __getitem__(self, i):
        if self._src is None:
            self._src = self._open()
            self._rng = np.random.default_rng(torch.initial_seed() % 2**32)
        rec = decode(self._src[i])
        sig, w = rec["signal"], self.window
        t = sig.shape[1]
        start = int(self._rng.integers(0, t - w + 1)) if t > w else 0
        out = np.zeros((12, w), np.float32)
        crop = sig[:, start : start + w]
        out[:, : crop.shape[1]] = crop / np.float32(UV_PER_MV)
        peaks = rec["rpeaks"]
        peaks = peaks[(peaks >= start) & (peaks < start + w)][: self.max_beats] - start
        rp = np.full(self.max_beats, -1, np.int32)
        rp[: len(peaks)] = peaks
        mask = rec["lead_mask"].astype(np.float32)
        if self.drop:
            mask[self.drop] = 0.0
            out[self.drop] = 0.0
        return {"signal": out, "rpeaks": rp, "lead_mask": mask}
