"""Config schema: overrides, errors that name the key, round trips, shipped configs."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from acl_jax.config import (
    Config,
    ConfigError,
    apply_overrides,
    from_dict,
    load_config,
    split_config_args,
    to_dict,
)
from acl_jax.leads import parse_regions

CONFIGS = sorted(Path(__file__).parent.parent.joinpath("configs").glob("*.py"))


def test_overrides_are_typed():
    cfg = apply_overrides(
        Config(),
        {
            "train.steps": "7",
            "optim.warmup_steps": "3",  # applied with train.steps: 100 >= 7 is never seen
            "model.widths": "8,16",
            "model.lead_wise": "false",
            "loss.temperature": "0.2",
            "objective": "simclr",
        },
    )
    assert cfg.train.steps == 7 and cfg.optim.warmup_steps == 3 and cfg.model.widths == (8, 16)
    assert cfg.model.lead_wise is False and cfg.loss.temperature == 0.2
    assert cfg.objective == "simclr"


@pytest.mark.parametrize(
    "key,value,needle",
    [
        ("train.stepz", "1", "'stepz' is not one of"),
        ("nope", "1", "'nope' is not one of"),
        ("train.steps", "many", "expected int"),
        ("model.lead_wise", "maybe", "expected bool"),
        ("train", "3", "is a group"),
        ("seed.x", "1", "has no sub-keys"),
    ],
)
def test_bad_overrides_name_the_key(key, value, needle):
    with pytest.raises(ConfigError, match=needle):
        apply_overrides(Config(), {key: value})


def test_split_config_args():
    rest, ov = split_config_args(
        ["--workdir", "w", "--config.train.steps=3", "--config.data.dir", "d", "--config", "c.py"]
    )
    assert rest == ["--workdir", "w", "--config", "c.py"]
    assert ov == {"train.steps": "3", "data.dir": "d"}


def test_dict_round_trip_and_hash():
    cfg = apply_overrides(Config(), {"augment.ops": "scale_crop,time_shift"})
    assert from_dict(to_dict(cfg)) == cfg
    assert hash(from_dict(to_dict(cfg))) == hash(cfg)
    with pytest.raises(ConfigError, match="unknown key 'bogus'"):
        from_dict({**to_dict(cfg), "bogus": 1})


def test_missing_config_file():
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("configs/nope.py")


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_load(path):
    cfg = load_config(path)
    assert isinstance(cfg, Config)
    assert len(parse_regions(cfg.model.regions)) >= 2
    assert cfg.data.batch_size > 0 and cfg.train.steps > 0
    assert path.read_text().lstrip().startswith('"""'), "config docstring gives its command"


def test_region_spec_errors():
    with pytest.raises(ValueError, match="unknown lead 'V7'"):
        parse_regions("a:I,II;b:V7")
    with pytest.raises(ValueError, match="in both regions"):
        parse_regions("a:I,II;b:II")
    regions = parse_regions("inferior:ii,III,avf;lateral:I,aVL")
    assert regions == (("inferior", (1, 2, 5)), ("lateral", (0, 4)))


def _documented_commands() -> list[tuple[str, str, str]]:
    """(config, module, command) for every `python -m acl_jax.X` in a config's docstring."""
    found = []
    for path in CONFIGS:
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        doc = re.sub(r"\\\n\s*", " ", doc)  # join backslash continuations
        for m in re.finditer(r"python -m (acl_jax\.\w+)([^\n]*)", doc):
            found.append((path.stem, m.group(1), m.group(2)))
    return found


def test_config_docstring_commands_use_real_flags():
    """Every flag in the launch commands of configs/*.py exists in its binary (a copy-pasted
    command must not die on an unknown flag)."""
    commands = _documented_commands()
    modules = sorted({mod for _, mod, _ in commands})
    assert {"acl_jax.train", "acl_jax.eval", "acl_jax.prepare"} <= set(modules)
    known = {}
    for mod in modules:
        target = mod + ".__main__" if mod in ("acl_jax.train", "acl_jax.eval") else mod
        setup = "import acl_jax.prepare as p; p.define_flags()" if mod == "acl_jax.prepare" else ""
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import importlib; from absl import flags; {setup}\n"
                f"importlib.import_module({target!r})\n"
                "print(' '.join(flags.FLAGS))",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        known[mod] = {f.replace("-", "_") for f in out.stdout.split()}
    bad = []
    for config, mod, args in commands:
        for flag in re.findall(r"(?<!\S)--([\w.-]+)", args):
            if flag.startswith("config."):
                continue  # config overrides, checked by test_shipped_configs_load's schema
            if flag.replace("-", "_") not in known[mod]:
                bad.append(f"configs/{config}.py: {mod} --{flag}")
    assert not bad, "unknown flags in config docstrings:\n" + "\n".join(bad)
    assert len(commands) >= 2 * len(CONFIGS) - 2  # train and eval at least, nearly everywhere
