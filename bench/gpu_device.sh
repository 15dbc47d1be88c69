#!/usr/bin/env bash
# The GPU checks on a machine with a CUDA GPU, from the repository root: tests/cuda/ on
# the real GPU, then `fastprop compare --preset gpu` (the GPU backends beside PyTorch, with the
# preset's speed targets). Arguments are passed on to fastprop compare (e.g. --quick).
#
# Nothing is installed: fastprop runs from the working tree (PYTHONPATH=.), on the machine's
# numba-cuda, PyTorch, pytest and hypothesis. Where the machine's numpy is newer than its
# numba-cuda supports, put a numpy wheel that it supports in .whl/ (git-ignored through
# .git/info/exclude); it is installed into /tmp/site first. For example, from another machine:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#       --platform manylinux2014_x86_64 -d .whl numpy==2.4.6
# The logs and the JSON of the comparison go to the folder $OUT (default /tmp/fastprop-gpu).
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
python3 -m pytest tests/cuda -q -p no:cacheprovider 2>&1 | tee "$out/test_cuda.log"
tests=${PIPESTATUS[0]}
python3 -m fastprop compare --preset gpu --no-progress --json "$out/gpu.json" "$@" 2>&1 \
    | tee "$out/gpu.log"
bench=${PIPESTATUS[0]}
echo "test_cuda exit $tests, fastprop compare --preset gpu exit $bench"
exit $((tests || bench))
