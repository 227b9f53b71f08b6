#!/usr/bin/env bash
# A short, prepared GPU check for a machine with an NVIDIA GPU (not run yet: this project's
# machines have had none). Builds the random real-size SD 1.5 and SDXL models on the fly and
# times one UNet step per precision / attention / compile / quantization choice at 512 and
# 1024 px (bench/gpu_check.py says what each check is).
#
#   bench/gpu_check.sh [--cache DIR] [--models sd15,sdxl] [--checks LIST] [--repeats N] [--dry-run]
#
# --dry-run builds the models and prints the plan without a GPU (CI runs it on tiny models).
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
CACHE="${TMPDIR:-/tmp}/imagebooth-gpu-check"
ARGS=()
DRY_RUN=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --cache) CACHE="$2"; shift 2 ;;
    --models|--checks|--repeats) ARGS+=("$1" "$2"); shift 2 ;;
    --dry-run) DRY_RUN=1; ARGS+=("$1"); shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [[ $DRY_RUN -eq 0 ]]; then
  if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu_check.sh: no NVIDIA GPU found (nvidia-smi); --dry-run prints the plan without one" >&2
    exit 3
  fi
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$PYTHON" -c 'import torch; assert torch.cuda.is_available(), "torch sees no CUDA device"; print("torch", torch.__version__, "cuda", torch.version.cuda)'
fi
export HF_HUB_OFFLINE=1
exec "$PYTHON" -m bench.gpu_check --cache "$CACHE" "${ARGS[@]}"
