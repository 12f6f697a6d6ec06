#!/usr/bin/env bash
# The main job on the embedded default: serve the API, submit an allowlisted workflow,
# follow it with progress, and show its result. State lives in SPE_HOME (default ./.spe).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh snakemake

export SPE_HOME="${SPE_HOME:-$PWD/.spe}"
export SPE_PORT="${SPE_PORT:-8080}"
export SPE_URL="http://127.0.0.1:${SPE_PORT}"
workflow="${1:-tsv-summary}"
spe=.venv/bin/spe

umask 077                    # the service's state is private (`spe serve` refuses otherwise)
mkdir -p "$SPE_HOME"
chmod 700 "$SPE_HOME"
$spe serve --port "$SPE_PORT" --log-level warning > "$SPE_HOME/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  if .venv/bin/python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
       "$SPE_URL/readyz" 2>/dev/null; then break; fi
  if ! kill -0 "$server" 2>/dev/null; then cat "$SPE_HOME/server.log" >&2; exit 1; fi
  sleep 0.2
done
echo "spe is serving GA4GH WES at $SPE_URL/ga4gh/wes/v1 (log: $SPE_HOME/server.log)"

SPE_TOKEN="$($spe dev token --user alice)"
export SPE_TOKEN
$spe run workflows
run_id="$($spe run submit "$workflow")"
$spe run status --wait "$run_id"
$spe run logs --tasks "$run_id"


echo
echo "== The outputs stay in the enclave's quarantine. alice asks for the CSV and the plot to leave:"
request_id="$($spe release request "$run_id" --file results/summary.csv --file results/summary.png \
  --justification "Group-level summary statistics and a box plot for the demo report." | tail -n 1)"

echo
echo "== Two independent development reviewers (never the requester) approve each file:"
for reviewer in rita rex; do
  SPE_TOKEN="$($spe dev token --user "$reviewer" --group spe:demo --group spe:demo:role=reviewer)" \
    $spe release vote "$request_id" --decision approve \
    --reason "Aggregates only; every group has at least 10 participants." > /dev/null
done
$spe release show "$request_id"

echo
echo "== alice downloads what was released:"
$spe release download "$request_id" --to "$SPE_HOME/released"
echo
head -n 5 "$SPE_HOME/released/$request_id/results/summary.csv"
echo "(the plot is $SPE_HOME/released/$request_id/results/summary.png)"
