#!/usr/bin/env bash
# The federation of deploy/project.yml as separate hosts on this machine: server, sites and admin each in a Linux
# network namespace of its own, on one bridge, the server reached by its name (fl-server.hospital.test) through the
# namespaces' own hosts files (/etc/netns/<namespace>/hosts; the machine's /etc/hosts is not touched).
# Needs root and iproute2; run from anywhere, paths are relative to the repository.
#
#   sudo deploy/hosts_demo.sh up                  # provision, namespaces, synthetic site data, preflight-check, start
#   sudo deploy/hosts_demo.sh submit --rounds 2   # the demo job from the admin's namespace: submit, wait, report
#   sudo deploy/hosts_demo.sh down                # stop every participant, remove the namespaces and hosts files
#
# Options: --root DIR (default workspace/hosts), --prefix NAME (namespaces NAME-<host>, default fedbrats),
# --cases N (synthetic cases per site); submit passes other options to jobs/<job>/job.py.
set -euo pipefail
SCRIPT="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$SCRIPT")/.."
PY="${PYTHON:-.venv/bin/python}"
if [ ! -x "$PY" ]; then
  echo "hosts_demo.sh: no $PY: run ./scripts/setup.sh first (or set PYTHON)" >&2
  exit 1
fi
if [ $# -eq 0 ]; then
  sed -n '2,12p' "$SCRIPT" | sed 's/^# \{0,1\}//'
  exit 2
fi
export FEDBRATS_HOSTS_PROG="deploy/hosts_demo.sh"
exec "$PY" -m fedbrats.runners.separate_hosts "$@"
