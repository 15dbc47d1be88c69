"""A GPU backend: one form of backpropagation on numba-cuda behind the protocol of
:mod:`fastprop.backends`.

Nothing of numba-cuda, nor the kernel modules, is imported before the first call: ``import
fastprop`` works, and stays quick, on any machine.
"""

from __future__ import annotations

from typing import Any

from ..spec import NetworkSpec


class CudaBackend:
    """A GPU backend: :mod:`fastprop.cuda.api` with form ``form``.

    Parameters
    ----------
    name : str
        The name users pass as ``backend=``.
    form : {"matrix", "naive"}
        The form of backpropagation its kernels run.
    """

    device = True

    def __init__(self, name: str, form: str) -> None:
        self.name = name
        self.form = form

    def __repr__(self) -> str:
        return f"CudaBackend({self.name!r})"

    @staticmethod
    def _api():
        from . import api

        return api

    def value_and_grad(self, spec: NetworkSpec, params: Any, X: Any, Y: Any, *,
                       sample_weight: Any = None, out: Any = None,
                       check_finite: bool = True) -> tuple[float, Any]:
        """:meth:`fastprop.MLP.value_and_grad` (:func:`fastprop.cuda.api.value_and_grad`)."""
        return self._api().value_and_grad(spec, params, X, Y, form=self.form,
                                          sample_weight=sample_weight, out=out,
                                          check_finite=check_finite)

    def loss(self, spec: NetworkSpec, params: Any, X: Any, Y: Any, *, sample_weight: Any = None,
             check_finite: bool = True) -> float:
        """:meth:`fastprop.MLP.loss` (:func:`fastprop.cuda.api.loss`)."""
        return self._api().loss(spec, params, X, Y, form=self.form, sample_weight=sample_weight,
                                check_finite=check_finite)

    def forward(self, spec: NetworkSpec, params: Any, X: Any, *,
                check_finite: bool = True) -> Any:
        """:meth:`fastprop.MLP.forward` (:func:`fastprop.cuda.api.forward`)."""
        return self._api().forward(spec, params, X, form=self.form, check_finite=check_finite)
