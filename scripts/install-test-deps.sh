#!/usr/bin/env bash
# Install the Debian packages the test suite needs, when they are missing.
# Idempotent: does nothing (and touches no network) when everything is present.
# Starts nothing: service starts during installation are refused (policy-rc.d).
set -euo pipefail

# One entry per package: "<debian package> <what shows it is installed>", where the second
# word is a path glob (contains a /) or a command name looked up on PATH. Add lines here.
REQUIREMENTS=(
  "postgresql /usr/lib/postgresql/*/bin/initdb"
  "chromium /usr/bin/chromium"
  "chromium-driver /usr/bin/chromedriver"
  "systemd /usr/bin/systemd-analyze"
  "slurm-wlm /usr/sbin/slurmctld"
  "slurmd /usr/sbin/slurmd"
  "slurmctld /usr/sbin/slurmctld"
  "munge /usr/sbin/munged"
  "sudo sudo"
  "python3-venv /usr/share/python-wheels/pip-*.whl"
  "redis-server /usr/bin/redis-server"
  "redis-tools /usr/bin/redis-cli"
  "charliecloud-runtime /usr/bin/ch-run"
  "busybox-static /usr/share/doc/busybox-static"
  "nginx /usr/sbin/nginx"
  "openssl /usr/bin/openssl"
  # the container image (scripts/build-image.sh, tests/package/test_image.py)
  "mmdebstrap /usr/bin/mmdebstrap"
  "buildah /usr/bin/buildah"
)

present() {
  local check=$1
  if [[ $check == */* ]]; then
    compgen -G "$check" >/dev/null
  else
    command -v "$check" >/dev/null 2>&1
  fi
}

missing=()
for entry in "${REQUIREMENTS[@]}"; do
  read -r package check <<<"$entry"
  if present "$check"; then
    echo "install-test-deps: $package: present"
  else
    missing+=("$package")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

sudo=()
if ((EUID != 0)); then
  command -v sudo >/dev/null || { echo "install-test-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi

# Refuse service starts while installing (the postgresql package would start a cluster).
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
  "${sudo[@]}" chmod 0755 "$policy"
  trap '"${sudo[@]}" rm -f "$policy"' EXIT
fi

echo "install-test-deps: installing: ${missing[*]}"
"${sudo[@]}" apt-get update
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y --no-install-recommends "${missing[@]}"
