"""The GPU backends against the CPU matrix backend, on a GPU or on numba's CUDA simulator.

Without a GPU the tests' ``conftest.py`` turns the simulator on, so a plain ``python -m pytest``
runs these tests on any machine with numba-cuda installed. Set ``NUMBA_ENABLE_CUDASIM`` to choose.

On the simulator the launch settings are patched to tiny blocks and tiles (it runs one OS thread
per CUDA thread), with the same code paths: fused and layer-by-layer matrix form, weights in
shared and in global memory, the weight gradient split over the batch.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import BACKEND_AGREEMENT_TOL, CASES, DTYPES, IDS, make_problem, rel_diff

import fastprop as fp
from fastprop.backends import get_backend, unavailable_reason
from fastprop.cuda import config, fused, gemm, report, runtime, workspace

REASON = runtime.unavailable_reason()
needs_cuda = pytest.mark.skipif(REASON is not None, reason=f"CUDA backends: {REASON}")

#: Launch settings on the simulator: a few threads per block and blocks per launch (element-wise
#: kernels loop), 16 x 16 tiles of 4 x 4 register blocks.
SIMULATOR_SETTINGS = {
    "THREADS_PER_BLOCK": 8,
    "MAX_BLOCKS": 2,
    "GEMM_TILES": {"float32": (16, 16, 8, 4, 4), "float64": (16, 16, 8, 4, 4)},
    "GEMM_NARROW_TILES": {"float32": (8, 8, 8, 4, 4), "float64": (8, 8, 8, 4, 4)},
    "TARGET_BLOCKS": 16,
    "MIN_SPLIT_ROWS": 4,
    "FUSED_THREADS": 4,
    "FUSED_ROW_BYTES": {"float32": 1040, "float64": 1040},
    "FUSED_BLOCKING": {"float32": (2, 2), "float64": (3, 2)},
    "FUSED_BLOCKS": 2,
}
#: How each tested path is reached: the GPU backend and settings on top of the above.
PATHS = {
    "fused": ("cuda", {}),
    "layered": ("cuda", {"FUSED_MAX_WIDTH": 0}),
    "naive": ("cuda-naive", {}),
}
BUILDERS = (gemm.kernels, fused.kernels, report.kernels)


def _apply(monkeypatch: pytest.MonkeyPatch, settings: dict) -> None:
    """Patch launch settings and rebuild the kernels that read them."""
    for name, value in settings.items():
        monkeypatch.setattr(config, name, value)
    for builder in BUILDERS:
        builder.cache_clear()


@pytest.fixture(autouse=True)
def launch_settings(monkeypatch):
    """Tiny launches on the simulator; the defaults on a GPU."""
    if REASON is None and runtime.simulated():
        _apply(monkeypatch, SIMULATOR_SETTINGS)
    yield
    for builder in BUILDERS:
        builder.cache_clear()


@pytest.fixture(params=list(PATHS))
def path(request, monkeypatch):
    """``(backend, path name)``, with the path's settings applied."""
    backend, settings = PATHS[request.param]
    _apply(monkeypatch, settings)
    return backend, request.param


def _device(*arrays):
    return [runtime.to_device(np.ascontiguousarray(a)) for a in arrays]


#: The gradient cases for the GPU paths: all of them on a GPU; on the simulator (one OS thread
#: per GPU thread) not the one sized for the CPU's thread split, which took minutes there.
GPU_CASES = [case for case in CASES
             if REASON is not None or not runtime.simulated() or case.name != "split-batch"]


@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", GPU_CASES, ids=[case.name for case in GPU_CASES])
def test_matches_cpu_matrix_backend(case, dtype, path):
    backend, _ = path
    net = case.net(dtype)
    params, X, Y = make_problem(net, case.batch, case.targets, seed=4)
    expected_loss, expected_grad = net.value_and_grad(params, X, Y)
    loss, grad = net.value_and_grad(params, X, Y, backend=backend)
    assert isinstance(grad, np.ndarray)
    assert grad.dtype == dtype and grad.shape == expected_grad.shape
    assert rel_diff(loss, expected_loss) <= BACKEND_AGREEMENT_TOL[dtype]
    assert rel_diff(grad, expected_grad) <= BACKEND_AGREEMENT_TOL[dtype]


@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [CASES[i] for i in (2, 4, 5)], ids=[IDS[i] for i in (2, 4, 5)])
def test_sample_weights_match_cpu(case, dtype, path):
    """Weights from the host and from the device, the loss alone too; bad weights are refused
    as on the CPU."""
    backend, _ = path
    net = case.net(dtype)
    params, X, Y = make_problem(net, case.batch, case.targets, seed=6)
    weights = np.random.default_rng(7).uniform(0, 2, size=case.batch)
    expected_loss, expected_grad = net.value_and_grad(params, X, Y, sample_weight=weights)
    for given in (weights, *_device(weights)):
        loss, grad = net.value_and_grad(params, X, Y, sample_weight=given, backend=backend)
        assert rel_diff(loss, expected_loss) <= BACKEND_AGREEMENT_TOL[dtype]
        assert rel_diff(grad, expected_grad) <= BACKEND_AGREEMENT_TOL[dtype]
    only_loss = net.loss(params, X, Y, sample_weight=weights, backend=backend)
    assert rel_diff(only_loss, expected_loss) <= BACKEND_AGREEMENT_TOL[dtype]
    with pytest.raises(ValueError, match="non-negative"):
        net.value_and_grad(params, X, Y, sample_weight=-weights, backend=backend)


@needs_cuda
@pytest.mark.parametrize("case", [CASES[i] for i in (1, 4, 5)], ids=[IDS[i] for i in (1, 4, 5)])
def test_loss_and_forward_match_cpu(case, path):
    backend, _ = path
    net = case.net(np.float64)
    params, X, Y = make_problem(net, case.batch, case.targets, seed=5)
    assert rel_diff(net.loss(params, X, Y, backend=backend), net.loss(params, X, Y)) <= 1e-12
    outputs = net.forward(params, X, backend=backend)
    assert isinstance(outputs, np.ndarray)
    assert rel_diff(outputs, net.forward(params, X)) <= 1e-12
    assert (net.predict(params, X, backend=backend) == net.predict(params, X)).all()
    on_device = net.predict(*_device(params, X), backend=backend)
    assert isinstance(on_device, np.ndarray) and (on_device == net.predict(params, X)).all()


@needs_cuda
def test_weights_from_global_memory_and_split_batch(monkeypatch):
    """The fused kernel reading weights that do not fit its shared buffer, and a weight
    gradient summed over several splits of the batch."""
    case = CASES[5]  # hinge: 6 -> 8 -> 8 -> 4, batch 9
    net = case.net(np.float64)
    params, X, Y = make_problem(net, case.batch, case.targets, seed=6)
    expected = net.value_and_grad(params, X, Y)
    _apply(monkeypatch, {"FUSED_WEIGHT_BYTES": {"float32": 64, "float64": 64},
                         "MIN_SPLIT_ROWS": 4,
                         "TARGET_BLOCKS": 10**6})
    loss, grad = net.value_and_grad(params, X, Y, backend="cuda")
    assert workspace.workspace(net.spec, "matrix", case.batch).splits > 1
    assert rel_diff(loss, expected[0]) <= 1e-12
    assert rel_diff(grad, expected[1]) <= 1e-12


@needs_cuda
def test_bitwise_deterministic(path):
    backend, _ = path
    case = CASES[5]
    net = case.net(np.float32)
    params, X, Y = make_problem(net, case.batch, case.targets, seed=7)
    first = net.value_and_grad(params, X, Y, backend=backend)
    second = net.value_and_grad(params, X, Y, backend=backend)
    assert first[0] == second[0] and (first[1] == second[1]).all()


class _Transfers:
    """Counts the host <-> device copies made through numba (the simulator's or a GPU's)."""

    def __init__(self, monkeypatch):
        self.to_device: list[tuple] = []
        self.to_host: list[tuple] = []
        cuda = runtime.cuda()
        real_to_device = cuda.to_device
        sample = cuda.device_array(1)
        array_type = type(sample)
        real_copy = array_type.copy_to_host

        def to_device(array, *args, **kwargs):
            self.to_device.append(np.shape(array))
            return real_to_device(array, *args, **kwargs)

        def copy_to_host(array, *args, **kwargs):
            self.to_host.append(array.shape)
            return real_copy(array, *args, **kwargs)

        monkeypatch.setattr(cuda, "to_device", to_device)
        monkeypatch.setattr(array_type, "copy_to_host", copy_to_host)


@needs_cuda
@pytest.mark.parametrize("backend", ["cuda", "cuda-naive"])
def test_device_arrays_in_and_out_without_host_copies(backend, monkeypatch):
    case = CASES[5]  # hinge, integer labels
    net = case.net(np.float64)
    params, X, Y = make_problem(net, case.batch, case.targets, seed=8)
    expected_loss, expected_grad = net.value_and_grad(params, X, Y)
    d_params, d_X, d_Y = _device(params, X, Y.astype(np.int64))
    net.value_and_grad(d_params, d_X, d_Y, backend=backend)  # warm: buffers allocated
    transfers = _Transfers(monkeypatch)
    loss, grad = net.value_and_grad(d_params, d_X, d_Y, backend=backend)
    out = runtime.cuda().device_array(net.n_params)
    loss_out, returned = net.value_and_grad(d_params, d_X, d_Y, backend=backend, out=out)
    # Only the report (the loss and the checks' verdict) comes back to the host.
    assert transfers.to_device == []
    assert transfers.to_host == [(report.REPORT_SIZE,)] * 2
    assert runtime.is_device_array(grad) and returned is out
    assert rel_diff(loss, expected_loss) <= 1e-12 and loss_out == loss
    assert rel_diff(grad.copy_to_host(), expected_grad) <= 1e-12
    assert rel_diff(out.copy_to_host(), expected_grad) <= 1e-12


@needs_cuda
def test_forward_keeps_device_outputs_on_the_device(monkeypatch):
    case = CASES[6]
    net = case.net(np.float32)
    params, X, _ = make_problem(net, case.batch, case.targets, seed=9)
    d_params, d_X = _device(params, X)
    net.forward(d_params, d_X, backend="cuda")
    transfers = _Transfers(monkeypatch)
    outputs = net.forward(d_params, d_X, backend="cuda", check_finite=False)
    assert transfers.to_host == [] and transfers.to_device == []
    assert runtime.is_device_array(outputs)
    assert rel_diff(outputs.copy_to_host(), net.forward(params, X)) <= 1e-6


@needs_cuda
def test_mixed_host_and_device_inputs():
    case = CASES[3]
    net = case.net(np.float64)
    params, X, Y = make_problem(net, case.batch, case.targets, seed=10)
    expected = net.value_and_grad(params, X, Y)
    (d_params,) = _device(params)
    _, grad = net.value_and_grad(d_params, X, Y, backend="cuda")
    assert runtime.is_device_array(grad)
    assert rel_diff(grad.copy_to_host(), expected[1]) <= 1e-12
    host_out = np.full(net.n_params, 7.0)
    _, returned = net.value_and_grad(d_params, X, Y, backend="cuda", out=host_out)
    assert returned is host_out and rel_diff(host_out, expected[1]) <= 1e-12


@pytest.fixture
def classifier():
    net = fp.MLP([4, 5, 3], "tanh", output="softmax", loss="cross_entropy")
    params, X, Y = make_problem(net, 6, "labels", seed=11)
    return net, params, X, Y


BAD_INPUTS = [
    ("X float32", lambda p, X, Y: (p, X.astype(np.float32), Y), TypeError, "X has dtype float32"),
    ("X shape", lambda p, X, Y: (p, X[:, :3], Y), ValueError, r"X must have shape \(n, 4\)"),
    ("params shape", lambda p, X, Y: (p[:-1], X, Y), ValueError, "params must have shape"),
    ("label range", lambda p, X, Y: (p, X, np.where(Y == 0, 3, Y)), ValueError,
     r"Y holds a label outside \[0, 3\)"),
    ("negative label", lambda p, X, Y: (p, X, -Y - 1), ValueError, "label outside"),
    ("X nan", lambda p, X, Y: (p, np.where(X > 1, np.nan, X), Y), ValueError,
     "X holds NaN or infinity"),
    ("params inf", lambda p, X, Y: (np.where(p > 0.5, np.inf, p), X, Y), ValueError,
     "params holds NaN or infinity"),
    ("labels batch", lambda p, X, Y: (p, X, Y[:-1]), ValueError, "one integer label per sample"),
]


@needs_cuda
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # (the simulator's NaN)
@pytest.mark.parametrize("on_device", [False, True], ids=["host", "device"])
@pytest.mark.parametrize("backend", ["cuda", "cuda-naive"])
@pytest.mark.parametrize(("name", "change", "error", "match"), BAD_INPUTS,
                         ids=[case[0] for case in BAD_INPUTS])
def test_bad_input(classifier, backend, on_device, name, change, error, match):
    net, params, X, Y = classifier
    args = change(params, X, Y)
    out = np.full(net.n_params, 7.0)
    if on_device:
        args = _device(*args)
        out = runtime.to_device(out)
    with pytest.raises(error, match=match):
        net.value_and_grad(*args, backend=backend, out=out)
    host = out if isinstance(out, np.ndarray) else out.copy_to_host()
    assert (host == 7.0).all(), "nothing is written on bad input"
    # The failed check leaves nothing behind: the next call is fine.
    _, grad = net.value_and_grad(params, X, Y, backend=backend)
    assert rel_diff(grad, net.value_and_grad(params, X, Y)[1]) <= 1e-12


@needs_cuda
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_non_finite_values_propagate_when_unchecked(classifier):
    net, params, X, Y = classifier
    X = X.copy()
    X[0, 0] = np.nan
    loss, grad = net.value_and_grad(params, X, Y, backend="cuda", check_finite=False)
    assert np.isnan(loss) and np.isnan(grad).any()


@needs_cuda
def test_bad_device_arrays(classifier):
    net, params, X, Y = classifier
    d_params, d_X, d_Y = _device(params, X, Y)
    cuda = runtime.cuda()
    wide = cuda.to_device(np.repeat(X, 2, axis=1))
    with pytest.raises(ValueError, match="X must be C-contiguous"):
        net.value_and_grad(d_params, wide[:, ::2], d_Y, backend="cuda")
    with pytest.raises(TypeError, match="labels on the GPU must be a C-contiguous int64"):
        net.value_and_grad(d_params, d_X, cuda.to_device(Y.astype(np.int32)), backend="cuda")
    with pytest.raises(TypeError, match="out has dtype float32"):
        net.value_and_grad(d_params, d_X, d_Y, backend="cuda",
                           out=cuda.device_array(net.n_params, np.float32))
    with pytest.raises(ValueError, match="out overlaps params"):
        net.value_and_grad(d_params, d_X, d_Y, backend="cuda", out=d_params)
    with pytest.raises(TypeError, match=r"X must be a numpy\.ndarray"):
        net.value_and_grad(params, X.tolist(), Y, backend="cuda")


@needs_cuda
def test_registered_and_skipped_where_not_timed():
    assert {"cuda", "cuda-naive"} <= set(fp.BACKENDS)
    assert get_backend("cuda").device and not get_backend("matrix").device
    assert unavailable_reason("matrix") is None
    if runtime.simulated():
        assert "simulator" in unavailable_reason("cuda")


def test_missing_cuda_is_a_clear_error(monkeypatch, classifier):
    """Where numba-cuda is missing, the CUDA backends are still listed, and asking for one says
    what is missing and how to install it (runs without CUDA too)."""
    net, params, X, Y = classifier
    monkeypatch.setattr(runtime, "_load", lambda: (
        None, "the numba-cuda package is not installed (pip install fastprop[cuda])"))
    for backend in ("cuda", "cuda-naive"):
        with pytest.raises(runtime.CudaUnavailableError,
                           match=r"numba-cuda package is not installed.*fastprop\[cuda\]"):
            net.value_and_grad(params, X, Y, backend=backend)
    with pytest.raises(runtime.CudaUnavailableError, match="numba-cuda"):
        net.forward(params, X, backend="cuda")
    assert "not installed" in unavailable_reason("cuda")
    assert net.value_and_grad(params, X, Y)[0] > 0  # the CPU backends do not care


def test_import_without_numba_cuda():
    """``import fastprop`` in a Python where numba-cuda cannot be imported."""
    script = (
        "import sys\n"
        "sys.modules['numba_cuda'] = None\n"  # makes `import numba_cuda` fail
        "import importlib.util\n"
        "real = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda n, *a: None if n == 'numba_cuda' else real(n, *a)\n"
        "import numpy as np, fastprop as fp\n"
        "assert 'numba.cuda' not in sys.modules\n"
        "net = fp.MLP([2, 3]); p = net.init(0); X = np.ones((2, 2)); Y = np.ones((2, 3))\n"
        "assert 'cuda' in fp.BACKENDS\n"
        "try:\n"
        "    net.value_and_grad(p, X, Y, backend='cuda')\n"
        "except RuntimeError as e:\n"
        "    print(e)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=Path(__file__).parent)
    assert result.returncode == 0, result.stderr
    assert "numba-cuda package is not installed" in result.stdout
    assert "pip install fastprop[cuda]" in result.stdout


ON_GPU = REASON is None and not runtime.simulated()
needs_gpu = pytest.mark.skipif(not ON_GPU, reason="needs a CUDA GPU (not the simulator)")


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("sizes", "batch"), [
    ((300, 257, 300, 10), 1000),  # layer by layer: many tiles, the batch split
    ((64, 100, 128, 64, 3), 5000),  # fused, weights of 128 x 100 in global memory in float32
    ((64, 64, 64, 64, 64), 65536),  # the second speed target's shape
])
@pytest.mark.parametrize("backend", ["cuda", "cuda-naive"])
def test_large_sizes_on_a_gpu(sizes, batch, dtype, backend):
    net = fp.MLP(sizes, "tanh", output="softmax", loss="cross_entropy", l2=1e-3, dtype=dtype)
    params, X, Y = make_problem(net, batch, "labels", seed=12)
    expected_loss, expected_grad = net.value_and_grad(params, X, Y)
    loss, grad = net.value_and_grad(params, X, Y, backend=backend)
    tolerance = {np.float32: 1e-4, np.float64: 1e-11}[dtype]  # long sums over the batch
    assert rel_diff(loss, expected_loss) <= tolerance
    assert rel_diff(grad, expected_grad) <= tolerance


@needs_gpu
@pytest.mark.parametrize("library", ["torch", "cupy"])
def test_gpu_arrays_of_other_libraries(library):
    """PyTorch CUDA tensors and CuPy arrays in, the gradient into one of theirs, no copies."""
    module = pytest.importorskip(library)
    case = CASES[3]
    net = case.net(np.float32)
    params, X, Y = make_problem(net, case.batch, case.targets, seed=13)
    expected_loss, expected_grad = net.value_and_grad(params, X, Y)
    if library == "torch":
        if not module.cuda.is_available():
            pytest.skip("PyTorch sees no GPU")
        inputs = [module.from_numpy(a).cuda() for a in (params, X, Y)]
        out = module.empty(net.n_params, dtype=module.float32, device="cuda")
        host = out.cpu().numpy
    else:
        inputs = [module.asarray(a) for a in (params, X, Y)]
        out = module.empty(net.n_params, dtype=np.float32)
        host = out.get
    for backend in ("cuda", "cuda-naive"):
        loss, returned = net.value_and_grad(*inputs, backend=backend, out=out)
        assert returned is out
        assert rel_diff(loss, expected_loss) <= 1e-5
        assert rel_diff(host(), expected_grad) <= 1e-5
