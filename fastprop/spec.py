"""What the backends know of a network: :class:`NetworkSpec`, read-only."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from ._kernel_ids import TARGET_KINDS


@dataclass(frozen=True, eq=False)
class NetworkSpec:
    """The view of an :class:`~fastprop.MLP` that backends use: :attr:`fastprop.MLP.spec`.

    Attributes
    ----------
    layout : numpy.ndarray
        The read-only ``int64`` layout table of :mod:`fastprop._layout`.
    loss_name : str
        The loss (:data:`fastprop.losses.LOSSES`).
    loss_id : int
        Its id for compiled code.
    l2 : numpy.floating
        The L2 penalty, as a scalar of the network's dtype.
    dtype : numpy.dtype
        float32 or float64.
    n_params, n_inputs, n_outputs : int
        Lengths of the flat parameter vector, an input row and an output row.
    per_thread : threading.local
        Where backends keep what they reuse between calls on this network (work buffers,
        compiled entry points), one attribute per backend name: each calling thread sees only
        its own, so calls from different threads never share a buffer.
    """

    layout: np.ndarray
    loss_name: str
    loss_id: int
    l2: np.floating
    dtype: np.dtype
    n_params: int
    n_inputs: int
    n_outputs: int
    per_thread: threading.local = field(default_factory=threading.local, repr=False)

    @property
    def n_layers(self) -> int:
        """Number of layers (weight matrices)."""
        return self.layout.shape[0]

    @property
    def takes_rows(self) -> bool:
        """Whether the loss takes float target rows."""
        return TARGET_KINDS[self.loss_name] != "labels"

    @property
    def takes_labels(self) -> bool:
        """Whether the loss takes integer class labels."""
        return TARGET_KINDS[self.loss_name] != "rows"
