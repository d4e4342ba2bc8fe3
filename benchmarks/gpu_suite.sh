#!/usr/bin/env bash
# One GPU, under 10 minutes: MPNet-base on SST-2 and every method from it (benchmarks/gpu_suite.py).
#   benchmarks/gpu_suite.sh          on a CUDA machine: rows into benchmarks/results/gpu_suite.json
#   benchmarks/gpu_suite.sh --dry    anywhere: the same pipeline on a tiny model, on the CPU
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=${PYTHON:-.venv/bin/python}
exec "$PY" benchmarks/gpu_suite.py "$@"
