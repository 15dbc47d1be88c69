#!/usr/bin/env bash
# The GPU checks of issue 4 on a lent GPU machine (the `device` tool), from the repository root:
# tests/test_cuda*.py on the real GPU, then bench/gpu.py (the speed targets beside PyTorch).
#
# That machine's image has numba-cuda 0.30.4, PyTorch, pytest and hypothesis, but numpy 2.5,
# with which numba-cuda 0.30.4 compiles no kernel (np.row_stack is gone). So carry a numpy 2.4.6
# wheel in .whl/ (made here, on the developer's machine, in the repository root):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#       --platform manylinux2014_x86_64 -d .whl numpy==2.4.6
# and run, with the device tool: command "bash bench/gpu_device.sh", carry [".whl"].
# Nothing is installed there: fastprop runs from the working tree (PYTHONPATH=.).
set -uo pipefail
out="${OUT:-/tmp/fastprop-gpu}"
mkdir -p "$out"
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/site:$PWD"
else
    export PYTHONPATH="$PWD"
fi
export PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import numpy, numba, numba_cuda, torch; print('numpy', numpy.__version__, 'numba', \
numba.__version__, 'numba-cuda', numba_cuda.__version__, 'torch', torch.__version__)"
python3 -m pytest tests/test_cuda.py tests/test_cuda_ptx.py tests/test_cuda_bench.py -q -p no:cacheprovider 2>&1 | tee "$out/test_cuda.log"
tests=${PIPESTATUS[0]}
python3 bench/gpu.py --json "$out/gpu.json" "$@" 2>&1 | tee "$out/gpu.log"
bench=${PIPESTATUS[0]}
echo "test_cuda exit $tests, bench/gpu.py exit $bench"
exit $((tests || bench))
