"""acl_jax: anatomy-aware self-supervised ECG pretraining in JAX/Flax NNX."""

__version__ = "0.1.0"
