#!/usr/bin/env bash
# Installs everything the tests need (Python packages, Debian packages) and runs the checks
# and the whole test suite. This is what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh "snakemake,postgres,dev,celery"
scripts/install-test-deps.sh
scripts/helm-venv.sh      # Python 3.12 + helm-sdkpy for tests/chart (skips with a reason without 3.12)
scripts/cluster-side.sh   # test accounts and the engines venv the SLURM jobs use
export SPE_REQUIRE_POSTGRES="${SPE_REQUIRE_POSTGRES:-1}"
export SPE_REQUIRE_S3="${SPE_REQUIRE_S3:-1}"
export SPE_REQUIRE_BROWSER="${SPE_REQUIRE_BROWSER:-1}"
export SPE_REQUIRE_SLURM="${SPE_REQUIRE_SLURM:-1}"
export SPE_REQUIRE_REDIS="${SPE_REQUIRE_REDIS:-1}"
# the official GA4GH documents are used when found (SPE_GA4GH_SPECS, or ../shared beside
# the checkout) and their tests skip with the reason otherwise: a lonely clone passes too
export SPE_CHAOS="${SPE_CHAOS:-1}"            # tests/chaos at the CI size:
export SPE_CHAOS_RUNS="${SPE_CHAOS_RUNS:-40}"  # runs per scenario (full size: 280)

echo "== ruff";   .venv/bin/ruff check spe tests benchmarks
echo "== mypy";   .venv/bin/mypy
echo "== import contracts"; .venv/bin/lint-imports
echo "== catalog"; .venv/bin/spe catalog verify
echo "== pytest"; .venv/bin/python -m pytest "$@"
