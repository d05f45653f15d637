#!/usr/bin/env bash
# Set up .venv if needed, check lint and formatting with ruff, then run the whole test suite.
# --fast leaves out the tests marked slow (FLARE runs, wheel install, soak); other arguments go to pytest.
# Test workspaces live in a private temporary folder; any FLARE process still running from it
# when the tests end is stopped, so no server, site or simulator outlives the run.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export TMPDIR
TMPDIR="$(mktemp -d "${TMPDIR:-/tmp}/fedbrats-tests.XXXXXX")"
cleanup() {
  local pids
  pids=$(pgrep -f -- "$TMPDIR" || true)
  if [ -n "$pids" ]; then
    echo "[test] stopping leftover processes: $pids"
    kill $pids 2>/dev/null || true
    sleep 3
    kill -9 $pids 2>/dev/null || true
  fi
  rm -rf "$TMPDIR"
}
trap cleanup EXIT
echo "[test] ruff check and ruff format --check"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
args=()
for arg in "$@"; do
  if [ "$arg" = "--fast" ]; then
    args+=(-m "not slow")
  else
    args+=("$arg")
  fi
done
.venv/bin/python -m pytest "${args[@]}"
