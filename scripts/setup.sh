#!/usr/bin/env bash
# Create .venv and install the project with its test tools. Safe to re-run.
# TORCH_SPEC picks the torch build (default: the CPU build where one is on local disk);
# TORCH_INDEX_URL points pip at another index, e.g. https://download.pytorch.org/whl/cu124 for CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
# pip warns about every configured find-links folder that does not exist on this machine; hide that noise
exec 2> >(grep -v --line-buffered "is ignored: it is neither a file nor a directory" >&2)
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if [ -n "${TORCH_SPEC:-}" ]; then
    spec="$TORCH_SPEC"
  elif ls /opt/wheels/torch-*+cpu-*.whl >/dev/null 2>&1; then
    spec="torch==$(ls /opt/wheels/torch-*+cpu-*.whl | head -1 | sed -E 's/.*torch-([0-9.]+)\+cpu.*/\1/')"
  else
    spec="torch"
  fi
  echo "[setup] installing $spec"
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    "${PIP[@]}" install "$spec" --index-url "$TORCH_INDEX_URL"
  else
    "${PIP[@]}" install "$spec"
  fi
fi
# (re)install when the project's metadata changed since the last install (entry points, dependencies)
STAMP=.venv/.fedbrats-pyproject.toml
if ! cmp -s pyproject.toml "$STAMP" || ! .venv/bin/python -c "import fedbrats, pytest, nvflare, monai" 2>/dev/null; then
  echo "[setup] installing fedbrats and its dependencies into .venv"
  "${PIP[@]}" install -e ".[test]"
  cp pyproject.toml "$STAMP"
fi
# the browser test of `fedbrats annotate --serve` drives Debian's Chromium through its driver
if ! command -v chromium >/dev/null 2>&1 || [ ! -x /usr/bin/chromedriver ]; then
  as_root=""
  [ "$(id -u)" -eq 0 ] || as_root="sudo -n"
  apt_install() { $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null; }
  if command -v apt-get >/dev/null 2>&1 && $as_root true 2>/dev/null; then
    echo "[setup] installing chromium and chromium-driver"
    apt_install || { $as_root apt-get update -q >/dev/null && apt_install; } \
      || echo "[setup] could not install chromium and chromium-driver: the browser test of the annotation page needs them"
  else
    echo "[setup] chromium and chromium-driver are missing (apt-get install chromium chromium-driver as root):" \
      "the browser test of the annotation page needs them"
  fi
fi
versions='import torch, monai, nvflare
print(f"torch {torch.__version__}, monai {monai.__version__}, nvflare {nvflare.__version__}")'
echo "[setup] ready: $(.venv/bin/python -c "$versions")"
