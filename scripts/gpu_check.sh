#!/usr/bin/env bash
# The product's GPU check, stopped after GPU_CHECK_TIMEOUT seconds (540): the AMP training step at 224x224x144
# (init_filters 16 and 32), the loader with background workers, a 2-round simulator job with both sites on the GPU,
# fedbrats infer on CUDA, and the job again with site-1 in one DDP process per GPU where there are 2 or more. Writes
# docs/benchmarks-gpu.md and .json, part by part (fedbrats bench gpu; arguments go to it, e.g. --docs DIR). PYTHON
# picks the interpreter that holds fedbrats (default: .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
"$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'gpu_check: no CUDA device here')"
exec timeout "${GPU_CHECK_TIMEOUT:-540}" "$PYTHON" -m fedbrats.cli bench gpu "$@"
