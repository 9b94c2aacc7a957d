"""acl_jax: anatomy-aware self-supervised ECG pretraining in JAX/Flax NNX."""

__version__ = "0.1.0"


def load(name_or_path: str):
    """The model directory `name_or_path` (a path, gs:// path or bundled name) as an object
    with `embed(paths)` and `predict(paths)` (acl_jax.inference.model.Model). Imported lazily:
    `import acl_jax` stays light."""
    from acl_jax.inference.model import load as _load

    return _load(name_or_path)
