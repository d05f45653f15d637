#!/usr/bin/env bash
# Set up .venv if needed, then run the federated demo on synthetic data (README: what it prints, where its outputs land).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/fedbrats quickstart "$@"
