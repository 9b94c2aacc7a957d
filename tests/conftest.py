"""Test-wide setup: 8 emulated CPU devices (must happen before JAX initializes its backend)."""

import os

os.environ.setdefault("JAX_NUM_CPU_DEVICES", "8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

from absl import flags  # noqa: E402

# Grain's mp_prefetch reads absl flags; pytest never parses them.
flags.FLAGS.mark_as_parsed()
