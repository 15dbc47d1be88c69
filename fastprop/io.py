"""Saving and loading a network with its parameters: one ``.npz`` file, no pickle anywhere.

The file holds two arrays: ``meta``, a JSON text (the format name and version, the network's
architecture, loss, L2 penalty and dtype, and a SHA-256 checksum), and ``params``, the flat
parameter vector as it is in memory, so a round trip is exact to the bit. :func:`load` reads
with ``allow_pickle=False`` and checks everything before it builds anything: a truncated or
malformed file, one whose content changed after it was written (the checksum: it catches
corruption and edits made without fastprop; it is not a signature), or one written by a newer
format version gives a :class:`ModelFileError` that says which. Whatever the content, it is
that error and nothing else: :func:`load` reads the file's bytes once, and everything the
parsing of those bytes can raise is caught in one place (``_DAMAGED``); an ``OSError`` comes
only from reading the file (missing, a directory, no permission).
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import os
import tokenize
import uuid
import zipfile
import zlib
from pathlib import Path

import numpy as np

from . import _validate as v
from ._layout import parameter_count
from .network import MLP

FORMAT = "fastprop.MLP"
#: The format version this fastprop writes and the newest it reads.
VERSION = 1
_KEYS = {"format", "version", "sizes", "activations", "output", "loss", "l2", "dtype", "sha256"}


class ModelFileError(ValueError):
    """A file that is not a readable fastprop model: the message says what is wrong."""


def _checksum(meta: dict, params: np.ndarray) -> str:
    """SHA-256 of the metadata (without its checksum) and the parameters' bytes."""
    described = {key: value for key, value in meta.items() if key != "sha256"}
    digest = hashlib.sha256(json.dumps(described, sort_keys=True).encode())
    digest.update(np.ascontiguousarray(params).view(np.uint8).data)
    return digest.hexdigest()


def save(path: str | os.PathLike, net: MLP, params: np.ndarray) -> None:
    """Write ``net`` and ``params`` to ``path`` as an ``.npz`` file (exactly that name).

    The file is written beside ``path`` under a temporary name and then renamed, so ``path`` is
    never left half written.

    Parameters
    ----------
    path : str or path-like
    net : MLP
    params : numpy.ndarray
        Flat parameters of ``net``: shape ``(n_params,)``, its dtype.
    """
    if not isinstance(net, MLP):
        raise TypeError(f"net must be a fastprop.MLP, got {type(net).__name__}")
    v.check_array("params", params, net.dtype, net.n_params)
    meta = {"format": FORMAT, "version": VERSION, "sizes": list(net.sizes),
            "activations": list(net.activations), "output": net.output, "loss": net.loss_name,
            "l2": net.l2, "dtype": str(net.dtype)}
    meta["sha256"] = _checksum(meta, params)
    path = Path(path)
    # (not tempfile.mkstemp, which creates the file readable by its owner only)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, "xb") as file:
            np.savez(file, meta=np.array(json.dumps(meta)), params=params)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


#: What reading a damaged archive can raise. The file's bytes are in memory by then, so none of
#: these comes from the filesystem: each says that the content is wrong.
_DAMAGED = (
    zipfile.BadZipFile,  # bad signatures, sizes, offsets or CRC
    EOFError,  # a member shorter than declared
    ValueError,  # a bad .npy header or shape, a negative offset, a name that is not UTF-8
    RuntimeError,  # a member declared encrypted, or (NotImplementedError, a subclass) a
    #                compression method, zip version or flag that zipfile does not support
    OSError, zlib.error, lzma.LZMAError,  # data declared bzip2-, deflate- or lzma-compressed
    OverflowError,  # an offset or size too large for C
    MemoryError,  # a huge declared array shape
    TypeError, SyntaxError, tokenize.TokenError,  # NumPy parsing a damaged .npy header
)


def _arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array in the ``.npz`` file at ``path``, read without pickle.

    Raises
    ------
    OSError
        The file cannot be read (missing, a directory, no permission): as ``open`` raises it.
    ModelFileError
        The content is not a readable ``.npz`` archive: anything in ``_DAMAGED``.
    """
    content = Path(path).read_bytes()  # (the only access to the filesystem)
    try:
        data = np.load(io.BytesIO(content), allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ModelFileError(f"{path} is not a fastprop model file: it holds a single "
                                 f"array, not an .npz archive")
        with data:
            return {name: data[name] for name in data.files}
    except ModelFileError:
        raise
    except _DAMAGED as error:
        raise ModelFileError(f"{path} is not a readable fastprop model file (truncated, "
                             f"corrupted or not an .npz): {type(error).__name__}: "
                             f"{error}") from None


def _flat(meta: dict) -> bool:
    """Whether every value in ``meta`` is a JSON scalar or a list of scalars."""
    scalar = (str, int, float, type(None))
    return all(isinstance(value, scalar)
               or (isinstance(value, list) and all(isinstance(item, scalar) for item in value))
               for value in meta.values())


def _read(path: str | os.PathLike) -> tuple[dict, np.ndarray]:
    """The file's metadata and parameters, checked for format, version and checksum."""
    arrays = _arrays(path)
    if set(arrays) != {"meta", "params"}:
        raise ModelFileError(f"{path} is not a fastprop model file: it holds the arrays "
                             f"{sorted(arrays)}")
    text, params = arrays["meta"], arrays["params"]
    if not isinstance(text, np.ndarray) or text.dtype.kind != "U" or text.ndim != 0:
        raise ModelFileError(f"{path} is not a fastprop model file (no {FORMAT!r} metadata)")
    try:
        meta = json.loads(str(text[()]))
    except (ValueError, RecursionError) as error:  # (JSONDecodeError is a ValueError)
        raise ModelFileError(f"{path} is not a fastprop model file (no {FORMAT!r} metadata): "
                             f"its metadata is not readable JSON: {error}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a fastprop model file (no {FORMAT!r} metadata)")
    if not _flat(meta):
        raise ModelFileError(f"{path}: malformed metadata: values nested deeper than a list")
    version = meta.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(f"{path}: malformed format version {version!r}")
    if version > VERSION:
        raise ModelFileError(f"{path} was written by a newer fastprop (format version "
                             f"{version}); this one reads up to version {VERSION}: upgrade "
                             f"fastprop")
    if set(meta) != _KEYS:
        raise ModelFileError(f"{path}: malformed metadata, keys {sorted(meta)} instead of "
                             f"{sorted(_KEYS)}")
    if not isinstance(params, np.ndarray):
        raise ModelFileError(f"{path}: params must be a flat float vector, got no .npy array")
    if params.ndim != 1 or params.dtype.kind != "f":
        raise ModelFileError(f"{path}: params must be a flat float vector, got shape "
                             f"{params.shape} and dtype {params.dtype}")
    if meta["sha256"] != _checksum(meta, params):
        raise ModelFileError(f"{path}: checksum mismatch: the file changed after fastprop "
                             f"wrote it (corrupted or edited)")
    return meta, params


def load(path: str | os.PathLike) -> tuple[MLP, np.ndarray]:
    """Read a network and its parameters written by :func:`save` (or :meth:`MLP.save`).

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    net : MLP
    params : numpy.ndarray
        Bit for bit the saved parameters (a new, writable array).

    Raises
    ------
    ModelFileError
        (a ``ValueError``) The file is truncated, corrupted, not a fastprop model, changed
        after it was written, or from a newer format version: whatever its content, never
        another exception.
    FileNotFoundError
        No file at ``path``; another ``OSError`` where the file cannot be read (a directory,
        no permission).
    """
    meta, params = _read(path)
    try:
        # (the parameters' count first: building a network never allocates more than the file)
        sizes = v.check_sizes(meta["sizes"])
        n_params = parameter_count(sizes)
        if n_params != params.size:
            raise ValueError(f"sizes {list(sizes)} make {n_params} parameters, but the file "
                             f"holds {params.size}")
        net = MLP(meta["sizes"], meta["activations"], meta["output"], meta["loss"], meta["l2"],
                  meta["dtype"])
        v.check_array("params", params, net.dtype, net.n_params)
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"{path}: malformed model: {error}") from None
    return net, params
