#!/usr/bin/env bash
# Make .venv-helm: a Python 3.12 venv with helm-sdkpy (Helm v4 as a library; it needs 3.12)
# and PyYAML, for linting and rendering charts/spe (scripts/helm_render.py, tests/chart).
# Python 3.12 comes from SPE_PYTHON312, else python3.12 on PATH, else pyenv. Without one
# it says so and exits 0: the chart tests then skip, naming the reason.
# Idempotent: does nothing when .venv-helm already imports helm_sdkpy.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-helm
if [[ -x $venv/bin/python ]] && "$venv/bin/python" -c "import helm_sdkpy, yaml" 2>/dev/null; then
  exit 0
fi
works() { [[ -n $1 ]] && "$1" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; }
python=""
candidates=("${SPE_PYTHON312:-}" "$(command -v python3.12 || true)")
if command -v pyenv >/dev/null; then
  candidates+=($(compgen -G "$(pyenv root)/versions/3.12*/bin/python3.12" | sort -V -r || true))
fi
for candidate in "${candidates[@]}"; do
  if works "$candidate"; then python=$candidate; break; fi
done
if [[ -z $python ]]; then
  echo "helm-venv: no Python 3.12 (set SPE_PYTHON312 or install it with pyenv): chart tests will skip"
  exit 0
fi
echo "helm-venv: $python -> $venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "helm-sdkpy>=0.1.30" "PyYAML>=6"
