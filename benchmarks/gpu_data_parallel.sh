#!/usr/bin/env bash
# Data-parallel speed on a GPU machine (not measured on this project's CPU machines): the MNIST MLP on cuda:0
# vs cuda:0..N-1 for every installed backend, N = all GPUs the machine has (2 or more). Writes
# benchmarks/results/data_parallel_gpu.json. Run from the repository root: bash benchmarks/gpu_data_parallel.sh
set -euo pipefail
GPUS=$(nvidia-smi -L | wc -l)
if [ "$GPUS" -lt 2 ]; then echo "needs 2 or more GPUs; this machine has $GPUS"; exit 1; fi
python benchmarks/data_parallel.py --gpu --devices "$GPUS" --rows 60000 --epochs 2 --batch 512 --repeats 2 \
  --threads "$(nproc)"
# and the GPU tests: 2 GPUs train the weights of 1 on every backend (skipped where fewer than 2 GPUs)
python -m pytest -q -p no:cacheprovider -m gpu tests/test_data_parallel.py
