#!/usr/bin/env bash
# The main job on the built-in example, on a fresh Debian 12 machine (as root): installs the
# validators and stagectl, writes the example environment and plans it.
#   scripts/quickstart.sh [ENV_DIR]      (default: ./example-env)
set -euo pipefail
cd "$(dirname "$0")/.."
env_dir="${1:-example-env}"

scripts/testbed-setup.sh validators
scripts/python-env.sh
if [ ! -e "$env_dir/inventory/staging.yml" ]; then
  .venv/bin/stagectl init "$env_dir"
fi
.venv/bin/stagectl plan --env "$env_dir" --out "$env_dir.rendered"
