"""Config schema: overrides, errors that name the key, round trips, shipped configs."""

import ast
import json
import re
import shlex
from pathlib import Path

import pytest

from acl_jax.config import (
    AclEcgConfig,
    BarlowTwinsConfig,
    Config,
    ConfigError,
    DlcConfig,
    LcdConfig,
    MocoConfig,
    VicregConfig,
    from_dict,
    load_config,
    to_dict,
)
from acl_jax.config_cli import apply_overrides, split_config_args
from acl_jax.leads import parse_regions

REPO = Path(__file__).parent.parent
CONFIGS = sorted(REPO.joinpath("configs").glob("*.py"))


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


@pytest.mark.parametrize(
    "overrides,needle",
    [
        ({"loss.temperature": "0"}, r"loss\.temperature must be > 0, got 0\.0"),
        ({"loss.base_momentum": "1.5"}, r"loss\.base_momentum must be in \[0, 1\]"),
        ({"acl_ecg.w_inter": "-1"}, r"acl_ecg\.w_inter=-1\.0.*each must be >= 0"),
        ({"acl_ecg.region_objective": "cross"}, r"acl_ecg\.region_objective='cross' is not"),
        ({"dlc.w_intra": "0", "dlc.w_inter": "0"}, r"dlc\.w_intra=0\.0, dlc\.w_inter=0\.0"),
        ({"barlow_twins.lambd": "-0.1"}, r"barlow_twins\.lambd must be >= 0"),
        ({"barlow_twins.projector_layers": "0"}, r"barlow_twins\.projector_layers >= 1"),
        ({"vicreg.eps": "0"}, r"vicreg\.eps must be > 0"),
        ({"lcd.lambda_dec": "-1"}, r"lcd\.lambda_dec must be >= 0"),
        ({"moco.queue_size": "-4"}, r"moco\.queue_size must be >= 0, got -4"),
        ({"core_ecg.keep_one_prob": "2"}, r"core_ecg\.keep_one_prob must be in \[0, 1\]"),
    ],
)
def test_method_sections_refuse_bad_settings(overrides, needle):
    """Each method's settings are checked once, where they are set, naming section.key."""
    with pytest.raises(ValueError, match=needle):
        apply_overrides(Config(), overrides)


# A stored checkpoint config from before the method sections: their keys lived in `loss`.
OLD_LOSS = {
    "temperature": 0.2,
    "w_global": 0.9,
    "w_intra": 0.7,
    "w_inter": 0.0,
    "bt_lambda": 0.01,
    "vicreg_sim": 20.0,
    "vicreg_var": 21.0,
    "vicreg_cov": 2.0,
    "lcd_lambda_dec": 0.5,
    "base_momentum": 0.98,
    "queue_size": 16,
}
NEW_SECTIONS = ("acl_ecg", "dlc", "barlow_twins", "vicreg", "lcd", "moco")


def _old_style(objective: str) -> dict:
    d = {k: v for k, v in to_dict(Config()).items() if k not in NEW_SECTIONS}
    return {**d, "objective": objective, "loss": dict(OLD_LOSS)}


def test_old_stored_configs_migrate_to_method_sections():
    """Old workdirs still resume and evaluate: loss.* keys move to their sections."""
    cfg = from_dict(_old_style("acl_ecg"))
    assert cfg.loss.temperature == 0.2 and cfg.loss.base_momentum == 0.98
    assert cfg.acl_ecg == AclEcgConfig(w_global=0.9, w_intra=0.7, w_inter=0.0)
    assert cfg.dlc == DlcConfig()
    assert cfg.barlow_twins == BarlowTwinsConfig(lambd=0.01)
    assert cfg.vicreg == VicregConfig(sim_weight=20.0, var_weight=21.0, cov_weight=2.0)
    assert cfg.lcd == LcdConfig(lambda_dec=0.5) and cfg.moco == MocoConfig(queue_size=16)
    # DLC shared ACL-ECG's w_intra / w_inter: for a DLC run they are DLC's (it had no w_global).
    dlc = from_dict(_old_style("dlc"))
    assert dlc.dlc == DlcConfig(w_intra=0.7, w_inter=0.0) and dlc.acl_ecg == AclEcgConfig()
    # A real stored config written before the change (bench/results), read as the eval does.
    stored = json.loads((REPO / "bench/results/ludb_segmentation_acl_ecg.json").read_text())
    cfg = from_dict(stored["config"])
    assert cfg.acl_ecg == load_config(REPO / "configs/acl_ecg_ptbxl.py").acl_ecg
    assert to_dict(from_dict(to_dict(cfg))) == to_dict(cfg)


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


def test_config_docstring_commands_parse(monkeypatch, capsys):
    """Every launch command in configs/*.py parses with its binary's real parser: its flags
    exist, their values have the right types, required flags are there and the `--config.*`
    overrides name real config keys (a copy-pasted command must not die on its arguments)."""
    from acl_jax import cli
    from acl_jax.eval.__main__ import EvalCommand
    from acl_jax.prepare import PrepareArgs
    from acl_jax.train.__main__ import TrainArgs

    parsers = {
        "acl_jax.train": (TrainArgs, True),
        "acl_jax.eval": (EvalCommand, False),
        "acl_jax.prepare": (PrepareArgs, False),
    }
    commands = _documented_commands()
    assert set(parsers) == {mod for _, mod, _ in commands}
    monkeypatch.chdir(Path(__file__).parent.parent)  # the commands name configs/X.py
    bad = []
    for config, mod, args in commands:
        spec, with_config = parsers[mod]
        argv = shlex.split(args.replace("[", " ").replace("]", " "))
        try:
            cli.parse(spec, argv, prog=mod, config=with_config)
        except SystemExit:
            bad.append(f"configs/{config}.py: {mod}{args}: {capsys.readouterr().err.strip()}")
    assert not bad, "config docstring commands that do not parse:\n" + "\n".join(bad)
    assert len(commands) >= 2 * len(CONFIGS) - 2  # train and eval at least, nearly everywhere
