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
HEADLINE = ("macro_auroc", "macro_auprc", "macro_f1", "dice_mean")


def eval_command(result: dict[str, Any]) -> str:
    """The `python -m acl_jax.eval` command line that produced an eval result file."""
    flags = []
    for k, v in sorted(result.get("args", {}).items()):
        if v is None or v is False:
            continue
        value = ",".join(map(str, v)) if isinstance(v, list) else str(v).lower()
        flags.append(f"--{k.replace('_', '-')}" + ("" if v is True else f"={value}"))
    return " ".join(["python -m acl_jax.eval", *flags])


def eval_entry(result: dict[str, Any], source: str) -> dict[str, Any]:
    """The card's summary of one eval result: task, protocol, step, test metrics, command."""
    test = result.get("test", {})
    return {
        "task": result.get("task"),
        "protocol": result.get("protocol"),
        "label_fraction": result.get("label_fraction"),
        "step": result.get("step"),
        "test": {k: test[k] for k in HEADLINE if k in test},
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
            "fs": manifest.get("fs"),
        },
        "preprocessing": preprocessing,
        "classifier": head_meta,
        "eval": evals,
        "code_version": code_version,
    }


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
        f"- dataset: {data['dataset']} ({data['source']}), splits "
        + ", ".join(f"{k} {v}" for k, v in data["splits"].items()),
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
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in e["test"].items())
        lines += [
            f"- {e['task']} / {e['protocol']} (step {e['step']}): {metrics}",
            f"  `{e['command']}`",
        ]
    return "\n".join(lines) + "\n"


def write_card(directory: epath.Path, card: dict[str, Any]) -> None:
    (directory / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    (directory / "MODEL_CARD.md").write_text(markdown(card))
