"""Exports a pretraining checkpoint's encoder as a self-contained model directory.

  python -m acl_jax.export --workdir W [--step N] [--classifier DIR] [--results R.json,...]
      --out MODEL_DIR [--data DIR]

MODEL_DIR gets model.json (config, rate, preprocessing spec), encoder.npz (encoder weights
only: no optimizer or data state), the classifier head of DIR if given (classifier.npz/json,
as `write_classifier` and `python -m acl_jax.eval --save DIR` write them; when DIR holds a
fine-tuned encoder.npz, that encoder is exported instead of the checkpoint's, and the card
says so), MODEL_CARD.md and card.json. The preprocessing spec is
copied from the training data's manifest (the checkpoint config's data.dir, or --data).
Load it with `acl_jax.load(MODEL_DIR)`; paths may be local or gs://.
"""

from __future__ import annotations

import dataclasses
import json
import sys

import numpy as np
from etils import epath

from acl_jax import cli
from acl_jax.config import Config, to_dict
from acl_jax.data import pipeline
from acl_jax.data.manifest import code_version
from acl_jax.data.preprocess import PreprocessConfig
from acl_jax.data.record import UV_PER_MV
from acl_jax.inference import card as card_lib
from acl_jax.inference.arrays import (
    ModelFormatError,
    load_arrays,
    load_module_arrays,
    module_arrays,
    save_arrays,
)
from acl_jax.inference.classifier import ARRAYS as CLASSIFIER_ARRAYS
from acl_jax.inference.classifier import ENCODER as CLASSIFIER_ENCODER
from acl_jax.inference.classifier import META as CLASSIFIER_META
from acl_jax.inference.classifier import (  # noqa: F401 - the head format's API lives here too
    LinearHead,
    read_classifier,
    write_classifier,
)
from acl_jax.inference.model import ENCODER, FORMAT, MODEL_JSON


class ExportError(ValueError):
    """A failed export; the message names the input and the fix."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExportArgs:
    workdir: str = cli.arg(help="Pretraining workdir (WORKDIR/checkpoints).")
    out: str = cli.arg(help="Model directory to write (local or gs://).")
    step: int | None = cli.arg(None, help="Checkpoint step (default: the latest).")
    classifier: str | None = cli.arg(None, help="Dir with classifier.npz/json to include.")
    results: tuple[str, ...] = cli.arg((), help="Eval result files (eval --out) for the card.")
    data: str | None = cli.arg(None, help="Prepared data dir (default: the config's data.dir).")
    name: str | None = cli.arg(None, help="Model name in the card (default: the out dir name).")
    overwrite: bool = cli.arg(False, help="Replace an existing model directory.")
    notes: str | None = cli.arg(
        None, help="Text file whose non-empty lines become the card's Notes (caveats, ...)."
    )


def preprocessing_spec(manifest: dict, cfg: Config, needs_rpeaks: bool) -> dict:
    """How records must be prepared for this encoder: prepare's filters (from the manifest's
    arguments), lead order, int16 storage, the eval window/stride and window aggregation."""
    from acl_jax.eval.features import eval_window

    args = manifest["source"]["args"]
    filters = PreprocessConfig(
        fs=int(manifest["fs"]), highpass_hz=args["highpass_hz"], lowpass_hz=args["lowpass_hz"]
    )
    window = eval_window(cfg)
    return {
        "filters": dataclasses.asdict(filters),
        "leads": list(manifest["leads"]),
        "storage": {"dtype": "int16", "unit": "uV", "uv_per_mv": UV_PER_MV},
        "window": window,
        "stride": cfg.data.eval_stride or window,
        "aggregate": "mean of window features per record",
        "max_beats": cfg.data.max_beats,
        "rpeaks": bool(needs_rpeaks),
    }


def _manifest(a: ExportArgs, cfg: Config) -> dict:
    data = a.data or cfg.data.dir
    try:
        return pipeline.read_manifest(data)
    except (FileNotFoundError, ValueError) as e:
        raise ExportError(
            f"cannot read the training data's manifest ({e}); pass --data DIR (the prepared "
            "data the encoder was trained on)"
        ) from None


def export(a: ExportArgs) -> epath.Path:
    """Writes the model directory; returns its path."""
    from absl import logging

    from acl_jax.train.checkpoint import CheckpointError, load_pretrainer

    logging.set_verbosity(logging.ERROR)  # Orbax warns on every read-only restore
    out = epath.Path(a.out)
    if (out / MODEL_JSON).exists() and not a.overwrite:
        raise ExportError(f"{out} already holds a model; pass --overwrite or another --out")
    try:
        model, cfg, fs, step = load_pretrainer(a.workdir, a.step)
    except CheckpointError as e:
        raise ExportError(str(e)) from None
    manifest = _manifest(a, cfg)
    if int(manifest["fs"]) != fs:
        raise ExportError(
            f"the manifest's rate {manifest['fs']} Hz differs from the checkpoint's {fs} Hz: "
            "pass --data with the data the encoder was trained on"
        )
    head = read_classifier(a.classifier) if a.classifier else None
    tuned = a.classifier is not None and (epath.Path(a.classifier) / CLASSIFIER_ENCODER).exists()
    if tuned:  # a fine-tuned classifier: its encoder replaces the checkpoint's
        source = str(epath.Path(a.classifier) / CLASSIFIER_ENCODER)
        load_module_arrays(model.encoder, load_arrays(source), source)
    if head is not None and head.meta.get("step", step) != step:
        raise ExportError(
            f"--classifier {a.classifier} was fitted on the features of step "
            f"{head.meta['step']}, the export is of step {step}: pass --step {head.meta['step']}"
        )
    evals = []
    for path in a.results:
        try:
            evals.append(card_lib.eval_entry(json.loads(epath.Path(path).read_text()), path))
        except (OSError, json.JSONDecodeError) as e:
            raise ExportError(f"--results {path}: unreadable eval result ({e})") from None
    info = write_model_dir(
        out,
        model.encoder,
        cfg,
        fs,
        step,
        manifest,
        head=head,
        evals=evals,
        name=a.name or out.name,
        workdir=str(a.workdir),
        encoder_source=f"fine-tuned by eval ({a.classifier})" if tuned else None,
        notes=_notes(a.notes),
    )
    print(f"exported step {step} of {a.workdir} -> {out} ({info['num_params']:,} parameters)")
    return out


def _notes(path: str | None) -> tuple[str, ...]:
    if path is None:
        return ()
    try:
        text = epath.Path(path).read_text()
    except OSError as e:
        raise ExportError(f"--notes {path}: unreadable ({e})") from None
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def write_model_dir(
    out: str | epath.Path,
    encoder,
    cfg: Config,
    fs: int,
    step: int | None,
    manifest: dict,
    *,
    head: LinearHead | None = None,
    evals: list[dict] = (),
    name: str = "model",
    workdir: str = "",
    encoder_source: str | None = None,
    notes: tuple[str, ...] = (),
) -> dict:
    """Writes a model directory for `encoder` (built from `cfg` at `fs`) trained on the data
    of `manifest`; returns the encoder summary {class, dim, num_params}."""
    out = epath.Path(out)
    if head is not None and head.dim != encoder.dim:
        raise ExportError(
            f"--classifier reads {head.dim} features, the encoder gives {encoder.dim}"
        )
    arrays = module_arrays(encoder)
    info = {
        "class": type(encoder).__name__,
        "dim": int(encoder.dim),
        "num_params": int(sum(v.size for v in arrays.values())),
    }
    spec = preprocessing_spec(manifest, cfg, encoder.needs_rpeaks)
    versions = code_version()
    meta = {
        "format": FORMAT,
        "config": to_dict(cfg),
        "fs": fs,
        "step": step,
        "preprocessing": spec,
        "encoder": {**info, "arrays": ENCODER},
        "code_version": versions,
    }
    evals = [*(head.meta.get("eval", []) if head else []), *evals]
    head_meta = (
        {"task": head.meta.get("task"), "labels": list(head.labels)} if head is not None else None
    )
    if head_meta is not None:
        head_meta["protocol"] = head.meta.get("protocol")
        head_meta["encoder"] = encoder_source or f"the checkpoint's (step {step})"
    card = card_lib.build_card(
        name=name,
        cfg_dict=meta["config"],
        step=step,
        workdir=workdir,
        manifest=manifest,
        encoder=info,
        preprocessing=spec,
        head_meta=head_meta,
        evals=evals,
        code_version=versions,
        notes=notes,
    )
    out.mkdir(parents=True, exist_ok=True)
    save_arrays(out / ENCODER, arrays)
    if head is not None:
        write_classifier(out, head)
    else:  # an --overwrite must not leave an earlier export's head behind
        for stale in (CLASSIFIER_ARRAYS, CLASSIFIER_META):
            (out / stale).unlink(missing_ok=True)
    card_lib.write_card(out, card)
    # model.json last: a directory is a model only once everything else is in it.
    (out / MODEL_JSON).write_text(json.dumps(meta, indent=2, default=_json_default) + "\n")
    return info


def _json_default(x):
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"{type(x).__name__} is not JSON serializable")


def main(argv: list[str] | None = None) -> int:
    return cli.run(
        ExportArgs,
        export,
        prog="python -m acl_jax.export",
        doc=__doc__,
        argv=argv,
        errors=(ExportError, ModelFormatError),
    )


if __name__ == "__main__":
    sys.exit(main())
