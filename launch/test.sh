#!/usr/bin/env bash
# The test suite: sets up .venv if needed, then runs pytest (pass extra pytest args through).
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/setup.sh
echo "+ .venv/bin/python -m pytest $*"
exec .venv/bin/python -m pytest "$@"
