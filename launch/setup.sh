#!/usr/bin/env bash
# Creates ./.venv (Python >= 3.11) and installs acl_jax with its test extra from this checkout.
# Idempotent: reuses an existing .venv. Override the interpreter with PYTHON=python3.12.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
command -v "$py" >/dev/null || { echo "setup: $py not found; install Python >= 3.11 or set PYTHON=" >&2; exit 2; }
"$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "setup: $py is $("$py" -V 2>&1); acl_jax needs >= 3.11" >&2; exit 2; }
if [ ! -x .venv/bin/python ]; then
  echo "+ $py -m venv .venv"
  "$py" -m venv .venv
fi
venv_py="$PWD/.venv/bin/python"
# Import from / so the checkout on the current path cannot stand in for an installed package.
if ! (cd / && "$venv_py" -c 'import acl_jax, pytest, xdist') 2>/dev/null || [ "${ACL_REINSTALL:-0}" = 1 ]; then
  echo "+ .venv/bin/pip install -e .[test]"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[test]"
fi
