"""The model card of a model directory: card.json (machine-readable) and MODEL_CARD.md.

card.json: {"name", "objective", "encoder": {class, dim, num_params}, "training": {steps,
workdir, config}, "data": {dataset, source, license, splits (records per split), rate},
"preprocessing" (as model.json), "classifier": {task, labels} or null, "eval": [{task,
protocol, metrics, command}], "code_version"}. Eval results come from eval result files
(`python -m acl_jax.eval --out FILE.json`) and carry the command that reproduces them.
"""

from __future__ import annotations

import json
from typing import Any

from etils import epath

# Licenses of the datasets prepare reads; a plain WFDB folder's license is the user's to state.
LICENSES = {
    "ptbxl": "CC BY 4.0 (PTB-XL, PhysioNet: https://physionet.org/content/ptb-xl/)",
    "cinc": "CC BY 4.0 (PhysioNet/CinC Challenge 2020/2021 training data)",
    "wfdb": "unknown: a WFDB folder; state its license here before sharing the model",
}
HEADLINE = ("macro_auroc", "macro_auprc", "macro_f1", "mean_dice")  # each with KEY_ci


def eval_command(result: dict[str, Any]) -> str:
    """The `python -m acl_jax.eval` command line that produced an eval result file."""
    flags = []
    for k, v in sorted(result.get("args", {}).items()):
        if v is None or v is False:
            continue
        value = ",".join(map(str, v)) if isinstance(v, list) else str(v).lower()
        flags.append(f"--{k.replace('_', '-')}" + ("" if v is True else f"={value}"))
    return " ".join(["python -m acl_jax.eval", *flags])


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: metrics[k] for m in HEADLINE for k in (m, f"{m}_ci") if k in metrics}


def _fold_spec(data_dir: str | None) -> str | None:
    """The `--splits` a prepared data dir was made with (e.g. 'train=1+2,val=8'), if readable."""
    try:
        manifest = json.loads((epath.Path(data_dir) / "manifest.json").read_text())
        return manifest["source"]["args"]["splits"]
    except (OSError, TypeError, KeyError, json.JSONDecodeError):
        return None


def eval_entry(result: dict[str, Any], source: str) -> dict[str, Any]:
    """The card's summary of one eval result: task, protocol, step, the splits it fitted,
    selected and tested on, val and test metrics with 95% CIs, and the command."""
    return {
        "task": result.get("task"),
        "protocol": result.get("protocol"),
        "label_fraction": result.get("label_fraction"),
        "step": result.get("step"),
        "splits": result.get("splits"),
        "data_splits": _fold_spec(result.get("data_dir")),
        "test_is_val": bool(result.get("test_is_val")),
        "val": _headline(result.get("val", {})),
        "test": _headline(result.get("test", {})),
        "command": eval_command(result),
        "file": source,
    }


def build_card(
    *,
    name: str,
    cfg_dict: dict,
    step: int,
    workdir: str,
    manifest: dict,
    encoder: dict,
    preprocessing: dict,
    head_meta: dict | None,
    evals: list[dict],
    code_version: dict,
    notes: tuple[str, ...] = (),
) -> dict[str, Any]:
    dataset = manifest.get("source", {}).get("dataset", "unknown")
    return {
        "name": name,
        "objective": cfg_dict["objective"],
        "encoder": encoder,
        "training": {"steps": step, "workdir": workdir, "config": cfg_dict},
        "data": {
            "dataset": dataset,
            "source": manifest.get("source", {}).get("src"),
            "license": LICENSES.get(dataset, "unknown"),
            "splits": {k: v["num_records"] for k, v in manifest.get("splits", {}).items()},
            "fold_spec": manifest.get("source", {}).get("args", {}).get("splits"),
            "fs": manifest.get("fs"),
        },
        "preprocessing": preprocessing,
        "classifier": head_meta,
        "eval": evals,
        "code_version": code_version,
        "notes": list(notes),
    }


def _metric_text(metrics: dict[str, Any]) -> str:
    parts = []
    for k in HEADLINE:
        if k in metrics:
            ci = metrics.get(f"{k}_ci")
            parts.append(f"{k} {metrics[k]:.4f}" + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else ""))
    return ", ".join(parts)


def markdown(card: dict[str, Any]) -> str:
    enc, data, pre = card["encoder"], card["data"], card["preprocessing"]
    f = pre["filters"]
    lines = [
        f"# {card['name']}",
        "",
        f"ECG encoder pretrained with **{card['objective']}** for {card['training']['steps']} "
        f"steps ({enc['class']}, {enc['num_params']:,} parameters, {enc['dim']}-d features).",
        "",
        "## Training data",
        f"- dataset: {data['dataset']} ({data['source']}), records per split "
        + ", ".join(f"{k} {v}" for k, v in data["splits"].items())
        + (f" (prepared with --splits {data['fold_spec']})" if data.get("fold_spec") else ""),
        f"- license: {data['license']}",
        "",
        "## Preprocessing (applied by `acl_jax.load(...).embed`)",
        f"- {f['fs']} Hz, band-pass {f['highpass_hz']}-{f['lowpass_hz']} Hz (Butterworth order "
        f"{f['filter_order']}, zero-phase), leads {', '.join(pre['leads'])} (absent ones masked)",
        f"- stored as int16 microvolts; windows of {pre['window']} samples, stride "
        f"{pre['stride']}, features averaged over a record's windows",
    ]
    if card["classifier"]:
        c = card["classifier"]
        lines += ["", "## Classifier", f"- task {c.get('task')}: {', '.join(c['labels'])}"]
        if c.get("encoder"):
            lines.append(f"- {c.get('protocol') or 'head'}; encoder: {c['encoder']}")
    lines += ["", "## Evaluation"]
    if not card["eval"]:
        lines.append("- none recorded (pass eval result files to export with --results)")
    for e in card["eval"]:
        splits = e.get("splits") or {}
        where = ", ".join(f"{k} on {v!r}" for k, v in splits.items())
        if e.get("data_splits"):
            where += f" (data prepared with --splits {e['data_splits']})"
        label = "val = test (the selection split)" if e.get("test_is_val") else "test"
        lines += [
            f"- {e['task']} / {e['protocol']} (step {e['step']}, label fraction "
            f"{e.get('label_fraction', 1.0):g}): {label}: {_metric_text(e['test'])}",
        ]
        if e.get("val") and not e.get("test_is_val"):
            lines.append(f"  val: {_metric_text(e['val'])}")
        if where:
            lines.append(f"  fit/select/report: {where}")
        lines.append(f"  `{e['command']}`")
    if card.get("notes"):
        lines += ["", "## Notes", *(f"- {n}" for n in card["notes"])]
    return "\n".join(lines) + "\n"


def write_card(directory: epath.Path, card: dict[str, Any]) -> None:
    (directory / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    (directory / "MODEL_CARD.md").write_text(markdown(card))
