"""The cases that ``fastprop compare`` and the asv suite time, and the named sets of them.

A case is one network at one batch size in one dtype: ``depth`` tanh layers of width ``width``
(input and output ``width`` too), identity output and squared loss, at batch ``batch``. Its
shape is written ``BxHxM`` (batch x width x depth), such as ``64x128x4``. A preset names a set
of shapes with the dtypes, contenders and speed targets of a run.

This module needs the standard library alone: the asv suite reads it from the working tree,
whatever fastprop commit asv has installed, because asv's parameter lists must be the same in
every process of a run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "DTYPES",
    "NETWORK",
    "PRESETS",
    "Case",
    "Preset",
    "Shape",
    "Target",
    "cross",
    "parse_shapes",
]

#: The network's options besides its sizes and dtype, for every case and every contender.
NETWORK = {"activation": "tanh", "output": "identity", "loss": "squared"}
#: The dtypes a case can be in.
DTYPES = ("float32", "float64")


class Shape(NamedTuple):
    """The sizes of a case: samples in the batch, width of every layer, number of layers."""

    batch: int
    width: int
    depth: int

    @classmethod
    def parse(cls, text: str) -> Shape:
        """The shape written ``text``, ``"BxHxM"``.

        Raises
        ------
        ValueError
            Unless ``text`` is three positive integers joined by ``x``.
        """
        try:
            sizes = [int(part) for part in text.split("x")]
        except ValueError:
            sizes = []
        if len(sizes) != 3 or min(sizes) < 1:
            raise ValueError(f"expected BATCHxWIDTHxDEPTH (three positive integers), got {text!r}")
        return cls(*sizes)

    def __str__(self) -> str:
        return f"{self.batch}x{self.width}x{self.depth}"


def parse_shapes(text: str) -> list[Shape]:
    """The shapes of ``text``, ``"BxHxM"`` separated by commas, each kept once, in order.

    Raises
    ------
    ValueError
        When any of them is not a shape (:meth:`Shape.parse`).
    """
    try:
        shapes = [Shape.parse(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"expected BATCHxWIDTHxDEPTH cases separated by commas (e.g. "
                         f"1x32x4,64x64x4), got {text!r}") from None
    return list(dict.fromkeys(shapes))


@dataclass(frozen=True)
class Case:
    """A shape in a dtype: the network, batch and dtype that every contender is timed on."""

    batch: int
    width: int
    depth: int
    dtype: str

    @classmethod
    def of(cls, shape: Shape | str, dtype: str) -> Case:
        """The case of ``shape`` (a :class:`Shape` or its ``"BxHxM"``) in ``dtype``."""
        return cls(*(Shape.parse(shape) if isinstance(shape, str) else shape), dtype)

    @property
    def shape(self) -> Shape:
        """Batch, width and depth."""
        return Shape(self.batch, self.width, self.depth)

    @property
    def sizes(self) -> list[int]:
        """The network's layer widths."""
        return [self.width] * (self.depth + 1)

    @property
    def label(self) -> str:
        """``BxHxM dtype``."""
        return f"{self.shape} {self.dtype}"

    @property
    def gemm_flops(self) -> int:
        """Floating-point operations of the matrix form's products: one per layer forward, one
        weight-gradient product per layer and one delta product per layer but the first."""
        return 2 * self.batch * self.width ** 2 * (3 * self.depth - 1)


def cross(shapes: Iterable[Shape], dtypes: Sequence[str]) -> list[Case]:
    """Every shape in every dtype, dtype by dtype."""
    shapes = list(shapes)
    return [Case.of(shape, dtype) for dtype in dtypes for shape in shapes]


class Target(NamedTuple):
    """A speed target of a preset: at ``shape``, the baseline's speedup over ``peer`` (the
    peer's median time over the baseline's) is at least ``speedup``."""

    shape: Shape
    peer: str
    speedup: float


@dataclass(frozen=True)
class Preset:
    """A named run of ``fastprop compare``: its shapes, dtypes, contenders and targets.

    ``None`` for ``backends`` means every backend of ``fastprop.BACKENDS``, for ``peers`` every
    peer installed, for ``baseline`` the default backend.
    """

    description: str
    shapes: tuple[Shape, ...]
    quick_shapes: tuple[Shape, ...]
    dtypes: tuple[str, ...] = ("float64",)
    backends: tuple[str, ...] | None = None
    peers: tuple[str, ...] | None = None
    baseline: str | None = None
    targets: tuple[Target, ...] = ()


def _shapes(*texts: str) -> tuple[Shape, ...]:
    return tuple(Shape.parse(text) for text in texts)


_QUICK = _shapes("1x32x4", "16x32x4", "64x64x4", "256x256x4")
#: The GPU preset's target shapes, first in its grid and alone in its quick run.
_GPU_TARGETS = _shapes("4096x1024x4", "65536x64x4")
#: The presets of ``fastprop compare --preset``. The asv suite's parameters are the shapes and
#: dtypes of ``asv`` and ``gpu``; asv refers to a parameter combination by its position, so a
#: shape added to one of these two goes at its end.
PRESETS = {
    "default": Preset(
        "fastprop's backends and every peer installed, from one sample of a small network up to "
        "a GEMM-bound one, float64",
        shapes=_shapes("1x32x4", "16x32x4", "64x64x4", "64x128x4", "256x256x4", "1x256x4",
                       "1024x1024x4"),
        quick_shapes=_QUICK),
    "asv": Preset(
        "the asv suite's grid: fastprop's backends and every peer installed, float32 and "
        "float64",
        shapes=_shapes("1x32x2", "1x32x4", "1x32x8", "16x32x4", "64x64x4", "64x128x4", "1x256x4",
                       "256x256x4", "256x256x8", "64x512x4", "1024x1024x4", "512x2048x3"),
        quick_shapes=_QUICK, dtypes=DTYPES),
    "gpu": Preset(
        "the GPU backends beside PyTorch on the same GPU (TF32 off), float32, at the sizes a "
        "GPU is for; the target sizes alone with --quick",
        shapes=(*_GPU_TARGETS, *_shapes("1x32x4", "4096x64x4", "4096x256x4", "65536x128x4",
                                        "262144x64x4", "256x64x4")),
        quick_shapes=_GPU_TARGETS, dtypes=("float32",), backends=("cuda", "cuda-naive"),
        peers=("torch-cuda", "torch-cuda-graph"), baseline="cuda",
        targets=(Target(_GPU_TARGETS[0], "torch-cuda", 0.7),
                 Target(_GPU_TARGETS[1], "torch-cuda", 2.0),
                 Target(_GPU_TARGETS[1], "torch-cuda-graph", 1.0))),
}
