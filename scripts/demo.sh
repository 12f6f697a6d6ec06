#!/usr/bin/env bash
# The main job on the embedded default: serve the API, submit an allowlisted workflow,
# follow it with progress, show what it read, request its outputs' release (with the
# automatic checks' results), approve them as two development reviewers, and download
# the files with their Five Safes RO-Crate.
#
# Usage: scripts/demo.sh [WORKFLOW]   (any Snakemake workflow of the catalog; default
#        tsv-summary). SPE_PORT (default 8080) is the port to serve on: a busy port is an
#        error. SPE_HOME is where the state lives, by default the same as for
#        `spe serve` and the `spe` CLI (~/.spe).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh snakemake

py=.venv/bin/python
spe=.venv/bin/spe
steps="$py scripts/demo_steps.py"
workflow="${1:-tsv-summary}"
# one default for SPE_HOME: the one `spe serve` and the CLI use (spe.config.Settings)
SPE_HOME="${SPE_HOME:-$($py -c 'from spe.config import Settings; print(Settings().home)')}"
export SPE_HOME
export SPE_PORT="${SPE_PORT:-8080}"
export SPE_URL="http://127.0.0.1:${SPE_PORT}"

$steps port-free "$SPE_PORT"  # never talk to whatever else answers on that port

umask 077                    # the service's state is private (`spe serve` refuses otherwise)
mkdir -p "$SPE_HOME"
chmod 700 "$SPE_HOME"
$spe serve --port "$SPE_PORT" --log-level warning > "$SPE_HOME/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  if ! kill -0 "$server" 2>/dev/null; then
    echo "demo: the server stopped; its log ($SPE_HOME/server.log):" >&2
    cat "$SPE_HOME/server.log" >&2
    exit 1
  fi
  if $py -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
       "$SPE_URL/readyz" 2>/dev/null; then break; fi
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
echo "== What the run read:"
$steps inputs "$run_id"

mapfile -t outputs < <($steps outputs "$run_id")
if [ "${#outputs[@]}" -eq 0 ]; then
  echo "demo: run $run_id made no outputs to release" >&2
  exit 1
fi
file_args=()
for path in "${outputs[@]}"; do file_args+=(--file "$path"); done

echo
echo "== The outputs stay in the enclave's quarantine. alice asks for them to leave:"
printf '   %s\n' "${outputs[@]}"
request_id="$($spe release request "$run_id" "${file_args[@]}" \
  --justification "Aggregate results of $workflow for the demo report; no row-level data." \
  | tail -n 1)"

echo
echo "== The automatic checks of the request:"
if ! $steps checks "$request_id"; then
  echo "demo: the checks did not put request $request_id in review (see above)" >&2
  exit 1
fi

echo
echo "== Two independent development reviewers (never the requester) approve each file:"
for reviewer in rita rex; do
  SPE_TOKEN="$($spe dev token --user "$reviewer" --group spe:demo --group spe:demo:role=reviewer)" \
    $spe release vote "$request_id" --decision approve \
    --reason "Aggregates only; reviewed for the demo." > /dev/null
done
$spe release show "$request_id"

echo
echo "== alice downloads what was released, with its Five Safes RO-Crate:"
released="$SPE_HOME/released"
$spe release download "$request_id" --to "$released"
$steps crate "$request_id" "$released"
echo
echo "The released files are in $released/$request_id/"
