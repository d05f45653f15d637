#!/usr/bin/env bash
# POC round trip: start a FLARE server and sites as separate processes, submit the FedAvg job,
# follow it, download the result, write the report, stop everything (see docs/deployment.md).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/fedbrats poc "$@"
