#!/usr/bin/env bash
# The cluster side of the SPE on this machine, for the tests and for a developer: what the
# Ansible role bibigrid/roles/spe_cluster does on a BiBiGrid cluster, in small.
#
#   scripts/cluster-side.sh [ENGINES_DIR]
#
# - groups: spe-researchers (every researcher account), spe-demo and spe-other (project
#   groups of tests/fixtures/policy/slurm.yaml);
# - accounts spe-alice (spe-demo) and spe-bob (spe-other), without a home or a password;
# - the engines: a venv from Debian's python3 in ENGINES_DIR (default /opt/spe/engines)
#   with snakemake, its SLURM executor plugin, spe's logger plugin (plugins/) and the
#   catalog's libraries. It lives
#   outside the service's venv because jobs run as the researcher, who must be able to
#   read it. Idempotent: reruns only what is missing. Needs root.
set -euo pipefail
ENGINES="${1:-/opt/spe/engines}"
REQS=("snakemake>=9,<10" "snakemake-executor-plugin-slurm>=2,<3" "matplotlib>=3.8"
      "numpy>=1.26")
PLUGIN="$(cd "$(dirname "$0")/.." && pwd)/plugins/snakemake-logger-plugin-spe"

group() { getent group "$1" >/dev/null || groupadd --system "$1"; }
account() {  # account NAME PROJECT_GROUP
  if ! id -u "$1" >/dev/null 2>&1; then
    useradd --no-create-home --home-dir /nonexistent --shell /bin/bash \
      --gid spe-researchers --groups "$2" "$1"
  fi
  usermod -a -G "$2" "$1"
}

group spe-researchers
group spe-demo
group spe-other
account spe-alice spe-demo
account spe-bob spe-other

stamp="$ENGINES/.spe-requirements"
want="$(printf '%s\n' "${REQS[@]}"; cat "$PLUGIN/pyproject.toml" \
  "$PLUGIN"/snakemake_logger_plugin_spe/*.py | sha256sum)"
if [[ ! -x "$ENGINES/bin/snakemake" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  mkdir -p "$(dirname "$ENGINES")"
  /usr/bin/python3 -m venv "$ENGINES"
  timeout 900 "$ENGINES/bin/pip" install -q --disable-pip-version-check "${REQS[@]}"
  timeout 300 "$ENGINES/bin/pip" install -q --disable-pip-version-check "$PLUGIN"
  printf '%s\n' "$want" >"$stamp"
fi
chmod -R a+rX "$ENGINES"
echo "cluster side: accounts spe-alice, spe-bob; engines in $ENGINES"
