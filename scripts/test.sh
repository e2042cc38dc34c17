#!/usr/bin/env bash
# The test command. On a Debian 12 machine, as root, it installs and starts everything the tests
# need (validators, Docker engine with Compose v2, PostgreSQL and Redis binaries, the Python
# environment) and runs them.
#   scripts/test.sh          every tier
#   scripts/test.sh fast     unit, render and static validation only (no Docker engine needed)
set -euo pipefail
cd "$(dirname "$0")/.."
tier="${1:-all}"

case "$tier" in
  fast) scripts/testbed-setup.sh validators ;;
  all) scripts/testbed-setup.sh docker ;;
  *) echo "usage: $0 [fast|all]" >&2; exit 2 ;;
esac
scripts/python-env.sh
# python-env.sh installs uv with `pip --user` when the machine has none: the demo app's tests
# need it on PATH too.
export PATH="$PATH:$HOME/.local/bin"

# The gates, before any test: lint and strict types (mypy keeps its cache in .mypy_cache).
echo "test: ruff check src tests"
.venv/bin/ruff check --quiet src tests
echo "test: mypy --strict src"
.venv/bin/mypy --strict src

if [ "$tier" = fast ]; then
  exec .venv/bin/python -m pytest -m "not docker and not services and not sandbox" "${@:2}"
fi
# `styles`: the sandbox onboarding of every fixture build style, minutes each, beyond CI's budget.
exec .venv/bin/python -m pytest -m "not styles" "${@:2}"
