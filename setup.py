"""The wheel's package list (all metadata is in pyproject.toml).

Two top-level folders ship inside the package: configs/ as acl_jax/configs (so `--config NAME`
works after `pip install`) and the bundled PTB-XL sample data/sample as acl_jax/sample (the
quickstart outside a checkout); bundled models are acl_jax/models_zoo/<name>/. Data folders
are namespace packages, which is how setuptools ships package data in subdirectories.
acl_jax/resources.py finds these files in a checkout and in an installed wheel alike.
"""

from setuptools import find_namespace_packages, setup

MAPPED = {"acl_jax.configs": "configs", "acl_jax.sample": "data/sample"}


def packages() -> list[str]:
    found = find_namespace_packages(include=["acl_jax", "acl_jax.*"], exclude=["*__pycache__"])
    for name, folder in MAPPED.items():
        found += [name] + [f"{name}.{p}" for p in find_namespace_packages(folder)]
    return found


setup(
    packages=packages(),
    package_dir=MAPPED,
    package_data={"": ["*.md", "*.json", "*.npz", "*.txt", "*.csv", "*.hea", "*.dat"]},
)
