#!/usr/bin/env bash
# Every GPU benchmark in one run (under 10 minutes on one GPU), JSON in benchmarks/results/gpu/:
# ResNet-50 224x224 on synthetic and on real decoded images, deepwater vs hand-written torch (AMP, channels-last)
# and Keras loops, images/s and GPU utilisation, the image pipeline's stall from epoch 2, 2-GPU scaling.
#   benchmarks/gpu_suite.sh            on a GPU machine
#   benchmarks/gpu_suite.sh --smoke    tiny sizes on the CPU (proves that it runs)
# Extra arguments go to benchmarks/gpu_suite.py (e.g. --parts torch_synthetic --compile).
# Then, on the GPU: the data-parallel benchmark on all GPUs (2 or more) and the gpu-marked tests.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python)}"
if [[ " $* " == *" --smoke "* ]]; then
  exec "$PYTHON" benchmarks/gpu_suite.py "$@"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "nvidia-smi: none"
timeout 420 "$PYTHON" benchmarks/gpu_suite.py "$@" || echo "gpu_suite.py stopped: $?"
GPUS=$(nvidia-smi -L 2>/dev/null | wc -l)
if [ "$GPUS" -ge 2 ]; then
  timeout 90 "$PYTHON" benchmarks/data_parallel.py --gpu --devices "$GPUS" --rows 60000 --epochs 2 --batch 512 \
    --repeats 2 --threads "$(nproc)" || echo "data_parallel.py stopped: $?"
fi
timeout 90 "$PYTHON" -m pytest -q -p no:cacheprovider -m gpu tests/
