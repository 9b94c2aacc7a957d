"""Files shipped with acl_jax, found the same way in a checkout and in an installed wheel.

A checkout keeps them at the top level (configs/, data/sample/); the wheel maps those folders
into the package (pyproject.toml [tool.setuptools.package-dir]: acl_jax/configs,
acl_jax/sample), so `--config acl_ecg_ptbxl` and the quickstart's sample work from any
directory after `pip install acl_jax`. Bundled models live in acl_jax/models_zoo in both.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = PACKAGE.parent


def _first_dir(*candidates: Path) -> Path | None:
    return next((p for p in candidates if p.is_dir()), None)


def configs_dir() -> Path | None:
    """The shipped configs: acl_jax/configs in a wheel, configs/ in a checkout."""
    return _first_dir(PACKAGE / "configs", _CHECKOUT / "configs")


def sample_dir() -> Path | None:
    """The bundled PTB-XL sample (189 records, CC BY 4.0): acl_jax/sample or data/sample."""
    return _first_dir(PACKAGE / "sample", _CHECKOUT / "data" / "sample")


def config_names() -> list[str]:
    """Names accepted by `load_config` besides paths, e.g. 'acl_ecg_ptbxl', 'tiny'."""
    root = configs_dir()
    return sorted(p.stem for p in root.glob("*.py") if p.stem != "__init__") if root else []


def config_file(path_or_name: str | Path) -> Path | None:
    """The config file of a path, or of a shipped config (None: neither).

    A shipped config is named bare ('acl_ecg_ptbxl', 'acl_ecg_ptbxl.py') or by its checkout
    path ('configs/acl_ecg_ptbxl.py'), so the README's commands also work outside a checkout.
    """
    path = Path(path_or_name)
    if path.is_file():
        return path
    bare = len(path.parts) == 1 or (len(path.parts) == 2 and path.parts[0] == "configs")
    name = path.name[: -len(".py")] if path.name.endswith(".py") else path.name
    if not bare or name not in config_names():
        return None
    return configs_dir() / f"{name}.py"
