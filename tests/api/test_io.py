"""Saving and loading: exact round trips, no pickle, and a clear error for every bad file."""

from __future__ import annotations

import io as io_
import json
import sys
import tracemalloc
import zipfile

import numpy as np
import pytest
from helpers import DTYPES

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
    fp.save(path, net, params)
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
        fp.save(tmp_path / "m.npz", net, net.init().astype(np.float32))
    with pytest.raises(FileNotFoundError):
        fp.save(tmp_path / "missing" / "m.npz", net, net.init())
    assert list(tmp_path.iterdir()) == []


def test_the_method_spelling_still_saves_and_warns(tmp_path):
    net = NETWORKS["softmax"](np.float64)
    params = net.init(seed=1)
    with pytest.warns(DeprecationWarning, match=r"use fastprop.save\(path, net, params\)"):
        net.save(tmp_path / "old.npz", params)
    fp.save(tmp_path / "new.npz", net, params)
    assert (tmp_path / "old.npz").read_bytes() == (tmp_path / "new.npz").read_bytes()


def _saved(tmp_path):
    net = NETWORKS["mixed"](np.float64)
    params = net.init(seed=2)
    path = tmp_path / "model.npz"
    fp.save(path, net, params)
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
    with pytest.raises(IsADirectoryError):
        fp.load(tmp_path)


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
    ({"sizes": [2, 3, 4, 2]}, r"malformed model: sizes \[2, 3, 4, 2\] make 35 parameters, but "
                              r"the file holds 30"),
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


# -- every damaged file: ModelFileError, or exactly the saved network -----------------------------

def _tiny(tmp_path):
    net = fp.MLP([2, 3, 1])
    params = net.init(seed=3)
    path = tmp_path / "tiny.npz"
    fp.save(path, net, params)
    return net, params, path.read_bytes()


def _escapes(path, variants, net, params):
    """What loading each of ``variants`` (written to ``path``) gave other than ModelFileError or
    exactly ``net`` and ``params``."""
    escaped = []
    for variant in variants:
        path.write_bytes(variant)
        try:
            loaded, loaded_params = fp.load(path)
        except ModelFileError:
            continue
        except Exception as error:  # anything else is what this test looks for
            escaped.append(f"{type(error).__name__}: {error}")
            continue
        finally:
            path.unlink()  # (much faster than truncating it for the next one, on ext4)
        if not (loaded == net and loaded_params.dtype == params.dtype
                and np.array_equal(loaded_params.view(np.uint8), params.view(np.uint8))):
            escaped.append(f"a different network: {loaded!r}, {loaded_params}")
    return escaped


@pytest.mark.parametrize("change", ["truncated", "xor 0x01", "xor 0xff"])
def test_every_truncation_and_single_byte_change(tmp_path, change):
    net, params, content = _tiny(tmp_path)
    if change == "truncated":
        variants = [content[:cut] for cut in range(len(content))]
    else:
        mask = int(change.split()[1], 16)
        variants = [content[:i] + bytes([byte ^ mask]) + content[i + 1:]
                    for i, byte in enumerate(content)]
    escaped = _escapes(tmp_path / "damaged.npz", variants, net, params)
    assert not escaped, f"{len(escaped)} of {len(variants)} escaped: {sorted(set(escaped))}"


def _patched(content, offset, new):
    return content[:offset] + new + content[offset + len(new):]


@pytest.mark.parametrize(("field", "new"), [
    # (in the central directory's record of meta.npy, meta.npy's data, or the end record)
    pytest.param("compression", b"\x63", id="unknown compression"),
    pytest.param("compression", b"\x0c", id="bzip2"),
    pytest.param("compression, data", (b"\x08", b"\xff"), id="deflate, invalid block"),
    pytest.param("compression, data", (b"\x0e", b"\x93N\x05\x00\xff\xff\xff\xff\xff"),
                 id="lzma, invalid options"),
    pytest.param("flags", b"\x01", id="encrypted"),
    pytest.param("flags", b"\x40", id="strong encryption"),
    pytest.param("flags", b"\x20", id="patched data"),
    pytest.param("version needed", b"\x63", id="zip version"),
    pytest.param("central directory offset", b"\xff", id="negative offset"),
])
def test_damaged_archive(tmp_path, field, new):
    net, params, content = _tiny(tmp_path)
    record, end = content.index(b"PK\x01\x02"), content.index(b"PK\x05\x06")
    data = content.index(b"\x93NUMPY")
    offsets = {"compression": [record + 10], "compression, data": [record + 10, data],
               "flags": [record + 8], "version needed": [record + 6],
               "central directory offset": [end + 16]}[field]
    for offset, value in zip(offsets, new if isinstance(new, tuple) else (new,), strict=True):
        content = _patched(content, offset, value)
    assert _escapes(tmp_path / "damaged.npz", [content], net, params) == []


def _rezipped(content, old, new):
    """``content`` with ``old`` replaced by ``new`` in the member params.npy, CRCs and all."""
    with zipfile.ZipFile(io_.BytesIO(content)) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    assert members["params.npy"].count(old) == 1
    members["params.npy"] = members["params.npy"].replace(old, new)
    rewritten = io_.BytesIO()
    with zipfile.ZipFile(rewritten, "w") as archive:
        for name, member in members.items():
            archive.writestr(name, member)
    return rewritten.getvalue()


@pytest.mark.parametrize(("old", "new"), [
    pytest.param(b"(13,), }" + b" " * 16, b"(10000000000000000,), }" + b" ", id="huge shape"),
    pytest.param(b"\x01\x00v\x00", b"\x01\x00\x01\x00", id="header length"),
    pytest.param(b"'<f8'", b"',f8'", id="descr"),
    pytest.param(b", 'fortran_order'", b",B'fortran_order'", id="bytes key"),
])
def test_damaged_npy_header(tmp_path, old, new):
    _, _, content = _tiny(tmp_path)
    path = tmp_path / "damaged.npz"
    path.write_bytes(_rezipped(content, old, new))
    with pytest.raises(ModelFileError, match=f"{path} is not a readable fastprop model file"):
        fp.load(path)


def test_huge_sizes_in_metadata(tmp_path):
    path, meta, params = _saved(tmp_path)
    _rewrite(path, {**meta, "sizes": [2**40, 2**40], "activations": []}, params, checksum=True)
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match=rf"{path}: malformed model: sizes "
                                                 rf"\[1099511627776, 1099511627776\] make .*"
                                                 rf"parameters"):
            fp.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20, "nothing huge allocated"


def test_deeply_nested_metadata(tmp_path):
    path, _, params = _saved(tmp_path)
    text = '{"format": "fastprop.MLP", "sizes": ' + "[" * 100_000 + "]" * 100_000 + "}"
    np.savez(path, meta=np.array(text), params=params)
    with pytest.raises(ModelFileError, match=f"{path} is not a fastprop model file .*"
                                             f"metadata is not readable JSON: maximum recursion"):
        fp.load(path)


def test_nested_metadata_values(tmp_path):
    # Depths about the recursion limit: json reads some that json.dumps (the checksum) or repr
    # (a message) could not write back.
    path, meta, params = _saved(tmp_path)
    limit = sys.getrecursionlimit()
    for depth in range(limit - 300, limit + 10):
        text = json.dumps({**meta, "sizes": "nested"}).replace('"nested"',
                                                               "[" * depth + "]" * depth)
        np.savez(path, meta=np.array(text), params=params)
        with pytest.raises(ModelFileError, match=f"{path}"):
            fp.load(path)
    np.savez(path, meta=np.array(json.dumps({**meta, "l2": [[0.0]]})), params=params)
    with pytest.raises(ModelFileError, match=f"{path}: malformed metadata: values nested deeper "
                                             f"than a list"):
        fp.load(path)
