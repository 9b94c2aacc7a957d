import time, json, sys
import jax, jax.numpy as jnp, numpy as np
from acl_jax.config import AugmentConfig
from acl_jax.augment import make_augment, augment_batch, View
cfg = AugmentConfig()
ops = tuple(sys.argv[1].split(",")) if len(sys.argv) > 1 else cfg.ops
import dataclasses
cfg = dataclasses.replace(cfg, ops=ops)
fn = make_augment(cfg, 100)
B, W, K = 256, 250, 16
rng = np.random.default_rng(0)
x = rng.standard_normal((B, 12, W)).astype(np.float32)
rp = np.sort(rng.integers(0, W, (B, K)), axis=1).astype(np.int32)
rp[:, 4:] = -1; rp[:, :4] = np.array([20, 90, 160, 230])
v = View(jnp.asarray(x), jnp.asarray(rp), jnp.ones((B, 12), jnp.float32))
f = jax.jit(lambda k, v: augment_batch(fn, k, v))
key = jax.random.key(0)
out = f(key, v); jax.block_until_ready(out)
ts = []
for i in range(200):
    k = jax.random.fold_in(key, i)
    t = time.perf_counter(); jax.block_until_ready(f(k, v)); ts.append(time.perf_counter() - t)
print(ops, "median ms", 1e3 * np.median(ts), "min ms", 1e3 * np.min(ts))
