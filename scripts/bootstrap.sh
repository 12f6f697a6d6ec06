#!/usr/bin/env bash
# Creates .venv (if needed) and installs spe with the given extras. Idempotent.
# Usage: scripts/bootstrap.sh [EXTRAS]   (default: snakemake)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-snakemake}"
python="${PYTHON:-python3}"

if [ ! -x .venv/bin/python ]; then
  if ! "$python" -m venv .venv 2>/dev/null; then
    echo "bootstrap: python3 -m venv failed; installing Debian's python3-venv" >&2
    rm -rf .venv
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv
    "$python" -m venv .venv
  fi
fi
stamp=".venv/.spe-installed-${extras//,/-}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "bootstrap: installing spe[${extras}] into .venv (log: .venv/pip.log)" >&2
  if ! { .venv/bin/python -m pip install --upgrade pip \
         && .venv/bin/python -m pip install -e ".[${extras}]"; } > .venv/pip.log 2>&1; then
    tail -n 40 .venv/pip.log >&2
    exit 1
  fi
  touch "$stamp"
fi
# spe's Snakemake logger plugin (job events as JSON lines), beside the service's snakemake
plugin=plugins/snakemake-logger-plugin-spe
pstamp=".venv/.spe-logger-plugin"
if [[ ",${extras}," == *",snakemake,"* ]] && { [ ! -f "$pstamp" ] \
    || [ -n "$(find "$plugin" -newer "$pstamp" -not -path '*/__pycache__*' -print -quit)" ]; }; then
  if ! .venv/bin/python -m pip install "./$plugin" >> .venv/pip.log 2>&1; then
    tail -n 40 .venv/pip.log >&2
    exit 1
  fi
  touch "$pstamp"
fi
