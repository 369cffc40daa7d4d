#!/usr/bin/env bash
# Issue 16's GPU checks as one command for a lent GPU machine (the `device` tool), which has
# PyTorch with CUDA but not every package cnnlab needs, and reaches no registry. Here first:
#     bash bench/device_wheels.sh
# then, through the tool:
#     run(command="bash bench/device_check.sh", carry=[".whl"], timeout_s=420)
# It installs the carried wheels, runs cnnlab from this checkout's src/ (the machine's own
# PyTorch, whatever its version), and writes machine.txt, tests.txt, gpu.txt and gpu.json to
# $OUT: the GPU tests (tests/test_gpu.py and the augmentation's GPU test), then bench/gpu.py
# (the main job on the GPU for seeds 0-2, and its time to 99% test accuracy).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/cnnlab-device-check}
mkdir -p "$OUT"
PYTHON=${PYTHON:-python3}
SITE=${SITE:-/tmp/cnnlab-site}
$PYTHON -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" .whl/*.whl || { echo "no wheels: run bench/device_wheels.sh here first"; exit 1; }
export PYTHONPATH="$PWD/src:$SITE" PYTHONUNBUFFERED=1
# Compiled once, as `make demo` does: else every `cnnlab train` below compiles them again.
$PYTHON -m compileall -q src
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
    $PYTHON -c "import sys, torch; print(sys.version.split()[0], torch.__version__, torch.cuda.is_available())"
    $PYTHON -m cnnlab.kernels
} 2>&1 | tee "$OUT/machine.txt"
timeout 200 $PYTHON -m pytest -q -p no:cacheprovider tests/test_gpu.py \
    tests/data/test_augment_online.py::test_a_gpu_gives_the_cpu_batch 2>&1 | tee "$OUT/tests.txt"
tests=${PIPESTATUS[0]}
timeout 180 $PYTHON bench/gpu.py --device "${DEVICE:-cuda}" --json "$OUT/gpu.json" 2>&1 \
    | tee "$OUT/gpu.txt"
bench=${PIPESTATUS[0]}
echo "tests exited $tests, bench/gpu.py exited $bench"
[ "$tests" = 0 ] && [ "$bench" = 0 ]
