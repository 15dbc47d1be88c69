"""Saving and loading: exact round trips, no pickle, and a clear error for every bad file."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import DTYPES

import fastprop as fp
from fastprop import io
from fastprop.io import ModelFileError

NETWORKS = {
    "softmax": lambda dtype: fp.MLP([3, 5, 2], "tanh", "softmax", "cross_entropy", l2=0.125,
                                    dtype=dtype),
    "no hidden layer": lambda dtype: fp.MLP([4, 2], dtype=dtype),
    "mixed": lambda dtype: fp.MLP([2, 3, 4, 1], ["relu", "softplus"], "sigmoid",
                                  "binary_cross_entropy", l2=1e-4 / 3, dtype=dtype),
}


def awkward_params(net):
    """Parameters with every kind of float value that must survive bit for bit."""
    params = net.init(seed=0)
    special = np.array([-0.0, np.finfo(net.dtype).smallest_subnormal, np.finfo(net.dtype).max,
                        1 / 3], dtype=net.dtype)
    params[:special.size] = special[:params.size]
    return params


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(NETWORKS))
def test_round_trip_is_exact(tmp_path, name, dtype):
    net = NETWORKS[name](dtype)
    params = awkward_params(net)
    path = tmp_path / "model.npz"
    net.save(path, params)
    loaded, loaded_params = fp.load(path)
    assert loaded == net and repr(loaded) == repr(net) and loaded.l2 == net.l2
    assert loaded_params.dtype == net.dtype and loaded_params.tobytes() == params.tobytes()
    assert loaded_params.flags.writeable
    fp.save(str(tmp_path / "again.npz"), loaded, loaded_params)
    assert (tmp_path / "again.npz").read_bytes() == path.read_bytes(), "deterministic files"


def test_file_name_as_given_no_pickle_no_leftovers(tmp_path):
    net = NETWORKS["softmax"](np.float64)
    path = tmp_path / "model.weights"
    fp.save(path, net, net.init(seed=1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.weights"]
    (tmp_path / "plain").write_bytes(b"")
    assert path.stat().st_mode == (tmp_path / "plain").stat().st_mode, "the umask's permissions"
    with np.load(path, allow_pickle=False) as data:
        assert sorted(data.files) == ["meta", "params"]
        assert json.loads(str(data["meta"]))["format"] == "fastprop.MLP"


def test_save_checks_its_arguments(tmp_path):
    net = NETWORKS["softmax"](np.float64)
    with pytest.raises(TypeError, match=r"net must be a fastprop\.MLP"):
        fp.save(tmp_path / "m.npz", "net", net.init())
    with pytest.raises(TypeError, match="params has dtype float32"):
        net.save(tmp_path / "m.npz", net.init().astype(np.float32))
    with pytest.raises(FileNotFoundError):
        net.save(tmp_path / "missing" / "m.npz", net.init())
    assert list(tmp_path.iterdir()) == []


def _saved(tmp_path):
    net = NETWORKS["mixed"](np.float64)
    params = net.init(seed=2)
    path = tmp_path / "model.npz"
    net.save(path, params)
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
    return path, meta, params


def _rewrite(path, meta, params, checksum=False, **extra):
    if checksum:
        meta = {**meta, "sha256": io._checksum(meta, params)}
    np.savez(path, meta=np.array(json.dumps(meta)), params=params, **extra)


def test_truncated_empty_and_foreign_files(tmp_path):
    path, _, _ = _saved(tmp_path)
    content = path.read_bytes()
    for cut in (len(content) // 2, len(content) - 10, 0):
        path.write_bytes(content[:cut])
        with pytest.raises(ModelFileError, match="not a readable fastprop model file"):
            fp.load(path)
    path.write_text("hello")
    with pytest.raises(ModelFileError, match="not a readable fastprop model file"):
        fp.load(path)
    np.save(tmp_path / "array.npy", np.zeros(3))
    with pytest.raises(ModelFileError, match="holds a single array"):
        fp.load(tmp_path / "array.npy")
    with pytest.raises(FileNotFoundError):
        fp.load(tmp_path / "nothing.npz")


def test_corrupted_bytes(tmp_path):
    path, _, params = _saved(tmp_path)
    content = bytearray(path.read_bytes())
    offset = bytes(content).index(params.tobytes())
    content[offset + 3] ^= 0x10
    path.write_bytes(bytes(content))
    with pytest.raises(ModelFileError, match="corrupted"):
        fp.load(path)


def test_tampered_files(tmp_path):
    path, meta, params = _saved(tmp_path)
    edited = params.copy()
    edited[0] += 1
    _rewrite(path, meta, edited)
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        fp.load(path)
    _rewrite(path, {**meta, "l2": 0.5}, params)
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        fp.load(path)
    _rewrite(path, meta, params.astype(np.float32))
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        fp.load(path)


@pytest.mark.parametrize(("change", "match"), [
    ({"version": 2}, r"newer fastprop \(format version 2\); this one reads up to version 1"),
    ({"version": "1"}, "malformed format version '1'"),
    ({"version": 0}, "malformed format version 0"),
    ({"format": "other"}, "not a fastprop model file"),
    ({"sizes": [3, 0]}, "malformed model: sizes must all be >= 1"),
    ({"sizes": [2, 3, 4, 2]}, r"malformed model: params must have shape \(35,\)"),
    ({"activations": ["relu"]}, "malformed model: activation must name one activation"),
    ({"dtype": "int8"}, "malformed model: dtype must be float32 or float64"),
    ({"loss": "cosine"}, "malformed model: loss must be one of"),
])
def test_malformed_or_incompatible_metadata(tmp_path, change, match):
    path, meta, params = _saved(tmp_path)
    _rewrite(path, {**meta, **change}, params, checksum=True)
    with pytest.raises(ModelFileError, match=match):
        fp.load(path)


def test_malformed_archives(tmp_path):
    path, meta, params = _saved(tmp_path)
    _rewrite(path, {key: value for key, value in meta.items() if key != "l2"}, params,
             checksum=True)
    with pytest.raises(ModelFileError, match="malformed metadata, keys"):
        fp.load(path)
    np.savez(path, meta=np.array("{not json"), params=params)
    with pytest.raises(ModelFileError, match=r"no 'fastprop\.MLP' metadata"):
        fp.load(path)
    np.savez(path, meta=np.array([1, 2]), params=params)
    with pytest.raises(ModelFileError, match=r"no 'fastprop\.MLP' metadata"):
        fp.load(path)
    _rewrite(path, meta, params, checksum=True, extra=np.zeros(2))
    with pytest.raises(ModelFileError, match=r"holds the arrays \['extra', 'meta', 'params'\]"):
        fp.load(path)
    np.savez(path, meta=np.array([{"a": 1}], dtype=object), params=params)
    with pytest.raises(ModelFileError, match="not a readable fastprop model file"):
        fp.load(path)
    _rewrite(path, meta, params.reshape(1, -1), checksum=True)
    with pytest.raises(ModelFileError, match="params must be a flat float vector"):
        fp.load(path)
