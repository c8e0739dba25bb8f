#!/usr/bin/env bash
# The GPU checks in one go, for a machine with CUDA, CuPy, PyTorch and numba but no network:
# the CuPy tests, the GPU benchmarks (fused kernels on, then off), a host-time profile of W1.
# Wheels for what is missing there (lark, graphviz, pytorch-crf) travel in .whl/ (git-excluded):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl lark graphviz pytorch-crf
# Writes logs under ${OUT:-/tmp/gpu_out}.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
nvidia-smi -L
python3 -c "import cupy, numba, torch, numpy; print('cupy', cupy.__version__, 'numba', numba.__version__, 'torch', torch.__version__, 'numpy', numpy.__version__)"
rc=0
timeout "${TEST_S:-240}" python3 -m pytest -q -p no:cacheprovider tests/test_fused_gpu.py tests/test_engine.py \
  2>&1 | tee "$OUT/tests.log" | tail -25 || rc=1
timeout "${BENCH_S:-150}" python3 benchmarks/bench_speed.py --gpu --only "${ONLY:-W1,W2,W3}" --rounds "${ROUNDS:-5}" \
  --json "$OUT/bench.json" 2>&1 | tee "$OUT/bench.log" || rc=1
RNNDSL_FUSED=0 timeout 90 python3 benchmarks/bench_speed.py --gpu --only W1,W3 --rounds 3 \
  2>&1 | tee "$OUT/bench_unfused.log" || rc=1
timeout 90 python3 benchmarks/profile_step.py W1 --gpu --steps 20 --top 40 > "$OUT/profile_W1.txt" 2>&1 || rc=1
head -60 "$OUT/profile_W1.txt"
exit $rc
