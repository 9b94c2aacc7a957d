#!/usr/bin/env bash
# The test suite: sets up .venv if needed, then runs pytest (pass extra pytest args through).
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/setup.sh
# Two workers: most tests wait on single-threaded XLA compiles, so two share 2 cores well.
# loadscope keeps a module's tests (and its module-scoped fixtures) on one worker; modules run
# longest first (tests/conftest.py LONGEST_FIRST) so both workers finish together.
workers=${ACL_TEST_WORKERS:-2}
echo "+ .venv/bin/python -m pytest -n $workers --dist loadscope --no-loadscope-reorder $*"
exec .venv/bin/python -m pytest -n "$workers" --dist loadscope --no-loadscope-reorder "$@"
