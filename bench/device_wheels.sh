#!/usr/bin/env bash
# The Python packages cnnlab needs that the lent GPU machine's image lacks (its python3 is 3.12
# with PyTorch, NumPy, matplotlib, Jinja2, safetensors, tqdm, pytest...), as wheels in .whl/ for
# bench/device_check.sh to install there: that machine reaches no package registry. Run here,
# in the repository's root, once per checkout; .whl/ stays out of git (.git/info/exclude).
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
# The versions this project's own environment was tested with.
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl \
    imagecodecs==2026.3.6 torchinfo==1.8.0 captum==0.9.0 roifile==2026.2.10
ls .whl
