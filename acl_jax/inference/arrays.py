"""Weights on disk as arrays only: `.npz` files read with `allow_pickle=False`, never pickles.

A model directory may come from someone else; loading it must not run their code. `np.load`
with `allow_pickle=False` refuses both a pickled file and an object array inside an `.npz`
(raising before anything is unpickled), and every other piece of a model directory is JSON.

Module weights are keyed by their flattened NNX state path ("backbone/layers/0/a/conv/kernel");
RNG state is not stored (inference draws no randomness).
"""

from __future__ import annotations

import io
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
from etils import epath
from flax import nnx

# Everything of a module except its RNG streams (keys and counters are not weights).
WEIGHTS = nnx.Not(nnx.RngState)


class ModelFormatError(ValueError):
    """A model directory that is missing, damaged or not ours; the message names the file."""


def save_arrays(path: str | epath.Path, arrays: dict[str, np.ndarray]) -> None:
    """Writes `arrays` to an .npz (local or gs://), refusing object arrays (they need pickle)."""
    bad = [k for k, v in arrays.items() if np.asarray(v).dtype.hasobject]
    if bad:
        raise ModelFormatError(f"{path}: arrays {bad} hold Python objects; store numbers only")
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    epath.Path(path).write_bytes(buf.getvalue())


def load_arrays(path: str | epath.Path) -> dict[str, np.ndarray]:
    """The arrays of an .npz written by `save_arrays`; a pickle, an object array or a damaged
    file is refused with ModelFormatError (nothing in the file is executed)."""
    path = epath.Path(path)
    if not path.is_file():
        raise ModelFormatError(f"{path} is missing: not a model directory written by export")
    data = path.read_bytes()
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise ModelFormatError(f"{path} is a single array, not an .npz of named arrays")
            return {k: npz[k] for k in npz.files}
    except ModelFormatError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        # ValueError is also numpy's answer to pickled data when allow_pickle=False.
        reason = str(e).splitlines()[0].rstrip(".") if str(e) else type(e).__name__
        raise ModelFormatError(
            f"{path} was refused: {reason}; model weights must be plain numeric arrays "
            "(re-export the model with python -m acl_jax.export)"
        ) from None


def state_key(path: tuple) -> str:
    return "/".join(str(p) for p in path)


def module_arrays(module: nnx.Module) -> dict[str, np.ndarray]:
    """{state path: host array} of every weight of `module` (parameters and BatchNorm stats)."""
    flat = nnx.to_flat_state(nnx.state(module, WEIGHTS))
    return {state_key(p): np.asarray(jax.device_get(v.get_value())) for p, v in flat}


def load_module_arrays(module: nnx.Module, arrays: dict[str, np.ndarray], source: str) -> None:
    """Sets `module`'s weights from `arrays` in place; every array must be present with the
    shape and dtype the module expects, and no array may be left over."""
    flat = nnx.to_flat_state(nnx.state(module, WEIGHTS))
    expected = {state_key(p) for p, _ in flat}
    missing = sorted(expected - set(arrays))
    extra = sorted(set(arrays) - expected)
    if missing or extra:
        raise ModelFormatError(
            f"{source} does not match the model its config builds: missing arrays "
            f"{missing[:5]}, unexpected arrays {extra[:5]}"
        )
    new = []
    for p, v in flat:
        key, want, got = state_key(p), v.get_value(), arrays[state_key(p)]
        if got.shape != want.shape or got.dtype != want.dtype:
            raise ModelFormatError(
                f"{source}: array {key!r} is {got.dtype}{list(got.shape)}, the model expects "
                f"{want.dtype}{list(want.shape)}"
            )
        new.append((p, v.replace(jnp.asarray(got))))
    nnx.update(module, nnx.from_flat_state(new))
