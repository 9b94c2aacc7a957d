"""Independent float64 NumPy / plain-Python references for CLEAR's parts (loops, not vectorized)."""

import numpy as np


def cut_beats(x, rpeaks, before, after):
    """x (B, C, T), rpeaks (B, K) -> beats (B, C, K, before + after), valid (B, K)."""
    b, c, t = x.shape
    k = rpeaks.shape[1]
    out = np.zeros((b, c, k, before + after))
    for n in range(b):
        for j in range(k):
            r = rpeaks[n, j]
            if r < 0:
                continue
            for i in range(before + after):
                s = r - before + i
                if 0 <= s < t:
                    out[n, :, j, i] = x[n, :, s]
    return out, rpeaks >= 0


def allowed_keys(query, lead_present, beat_valid, masked):
    """The documented attention rules for one example, by enumeration.

    Tokens are ("s", l) for lead summaries and ("b", l, k) for beats. Returns the set of keys
    the query may attend to.
    """
    c, k = beat_valid.shape

    def valid(tok):
        return lead_present[tok[1]] and (tok[0] == "s" or beat_valid[tok[1], tok[2]])

    def hidden(tok):
        return tok[0] == "b" and valid(tok) and masked[tok[1], tok[2]]

    if not valid(query):
        return {query}
    lead = query[1]
    own_beats = {("b", lead, j) for j in range(k)}
    if query[0] == "s":
        return {query} | {t for t in own_beats if valid(t) and not hidden(t)}
    others = {("b", m, query[2]) for m in range(c) if m != lead}
    if hidden(query):
        return {("s", lead)} | {t for t in others if valid(t)}
    return {("s", lead)} | {t for t in own_beats | others if valid(t) and not hidden(t)}


def attention(x, w_qkv, b_qkv, w_out, b_out, heads, mask):
    """x (B, N, D); mask (B, 1, N, N) bool -> (B, N, D), per query softmax over allowed keys."""
    b, n, d = x.shape
    dh = d // heads
    qkv = x @ w_qkv + b_qkv  # (B, N, 3D): [q | k | v] blocks, each split into heads
    out = np.zeros((b, n, d))
    for e in range(b):
        for h in range(heads):
            q = qkv[e, :, h * dh : (h + 1) * dh]
            kk = qkv[e, :, d + h * dh : d + (h + 1) * dh]
            v = qkv[e, :, 2 * d + h * dh : 2 * d + (h + 1) * dh]
            for i in range(n):
                keys = np.flatnonzero(mask[e, 0, i])
                s = q[i] @ kk[keys].T / np.sqrt(dh)
                w = np.exp(s - s.max())
                w /= w.sum()
                out[e, i, h * dh : (h + 1) * dh] = w @ v[keys]
    return out @ w_out + b_out


def reconstruction_loss(pred, target, masked, norm_target):
    """Mean over masked tokens of the per-token mean squared error."""
    total, count = 0.0, 0
    for idx in zip(*np.nonzero(masked)):
        t = np.asarray(target[idx], np.float64)
        if norm_target:
            t = (t - t.mean()) / np.sqrt(t.var() + 1e-6)
        total += np.mean((np.asarray(pred[idx], np.float64) - t) ** 2)
        count += 1
    return total / max(count, 1)
