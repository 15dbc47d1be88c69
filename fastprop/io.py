"""Saving and loading a network with its parameters: one ``.npz`` file, no pickle anywhere.

The file holds two arrays: ``meta``, a JSON text (the format name and version, the network's
architecture, loss, L2 penalty and dtype, and a SHA-256 checksum), and ``params``, the flat
parameter vector as it is in memory, so a round trip is exact to the bit. :func:`load` reads
with ``allow_pickle=False`` and checks everything before it builds anything: a truncated or
malformed file, one whose content changed after it was written (the checksum: it catches
corruption and edits made without fastprop; it is not a signature), or one written by a newer
format version gives a :class:`ModelFileError` that says which.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
import zipfile
from pathlib import Path

import numpy as np

from . import _validate as v
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


def _arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array in the ``.npz`` file at ``path``, read without pickle."""
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ModelFileError(f"{path} is not a fastprop model file: it holds a single "
                                 f"array, not an .npz archive")
        with data:
            return {name: data[name] for name in data.files}
    except (zipfile.BadZipFile, EOFError, ValueError) as error:
        if isinstance(error, ModelFileError):
            raise
        raise ModelFileError(f"{path} is not a readable fastprop model file (truncated, "
                             f"corrupted or not an .npz): {error}") from None


def _read(path: str | os.PathLike) -> tuple[dict, np.ndarray]:
    """The file's metadata and parameters, checked for format, version and checksum."""
    arrays = _arrays(path)
    if set(arrays) != {"meta", "params"}:
        raise ModelFileError(f"{path} is not a fastprop model file: it holds the arrays "
                             f"{sorted(arrays)}")
    text, params = arrays["meta"], arrays["params"]
    try:
        meta = json.loads(str(text[()])) if text.dtype.kind == "U" and text.ndim == 0 else None
    except json.JSONDecodeError:
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a fastprop model file (no {FORMAT!r} metadata)")
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
        after it was written, or from a newer format version.
    FileNotFoundError
        No file at ``path``.
    """
    meta, params = _read(path)
    try:
        net = MLP(meta["sizes"], meta["activations"], meta["output"], meta["loss"], meta["l2"],
                  meta["dtype"])
        v.check_array("params", params, net.dtype, net.n_params)
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"{path}: malformed model: {error}") from None
    return net, params
