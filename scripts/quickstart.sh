#!/usr/bin/env bash
# Set up .venv if needed, then run the federated demo on synthetic data (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/fedbrats quickstart "$@"
