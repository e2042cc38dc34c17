#!/usr/bin/env bash
# Creates (or refreshes) the project's virtualenv in .venv from the lock file, with uv.
#   scripts/python-env.sh        stagectl and its test tools, exactly as locked in uv.lock
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v uv >/dev/null 2>&1 && [ ! -x "$HOME/.local/bin/uv" ]; then
  echo "python-env: installing uv from PyPI"
  python3 -m pip install --quiet --user uv
fi
UV=$(command -v uv || echo "$HOME/.local/bin/uv")
# --locked: the lock file is the truth, and a lock that no longer matches pyproject.toml fails
# (--frozen would install the stale lock without a word).
# --compile-bytecode, and compileall for stagectl's own sources (installed editable): every
# ansible-playbook run imports Ansible anew, and each task's worker imports the plugins it uses.
# Without .pyc files next to them, each of those imports compiles the source again wherever
# PYTHONDONTWRITEBYTECODE is set (as on the machines stagectl is tested on): about 1.2 s a run
# and a few seconds a deploy, measured. A .pyc older than its source is recompiled, never used.
"$UV" sync --quiet --locked --extra dev --python python3 --compile-bytecode
.venv/bin/python -m compileall -q src >/dev/null
echo "python-env: $(.venv/bin/stagectl --help >/dev/null && echo 'stagectl ready in .venv')"
