"""Optimizers and learning-rate schedules: one compiled update of the flat parameter vector.

An optimizer is a small frozen description (:class:`SGD`, :class:`Adam`): its hyperparameters,
its learning-rate schedule, and the length of the state it keeps (velocities, moments). The
training loop (:mod:`fastprop.training`) keeps that state in one flat array beside the
parameters and, after each minibatch's gradient, calls the compiled :func:`step`, which updates
every parameter in one pass.

The L2 penalty is not an optimizer option: it is the network's ``l2`` (``MLP(..., l2=...)``),
so it is part of the loss and of the gradient the optimizer receives (weight decay for SGD).

Schedules set the learning rate of a whole epoch, from the epoch number and the number of
samples seen before it (the rate is constant within an epoch, as in scikit-learn and in
PyTorch's epoch schedulers):

- :class:`Constant`: ``lr``;
- :class:`InverseScaling`: ``lr / (t + 1) ** power_t``, ``t`` the samples seen before the epoch
  (scikit-learn's ``learning_rate="invscaling"``);
- :class:`StepDecay`: ``lr * gamma ** (epoch // step_size)``, epochs counted from 0 (PyTorch's
  ``StepLR``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _validate as v
from ._jit import jit

SGD_KIND = 0
ADAM_KIND = 1


# -- schedules --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Constant:
    """The same learning rate in every epoch."""

    def __call__(self, lr: float, epoch: int, samples: int) -> float:
        """The learning rate of epoch ``epoch`` (from 0), after ``samples`` samples."""
        return lr


@dataclass(frozen=True)
class InverseScaling:
    """``lr / (t + 1) ** power_t``, ``t`` the samples seen before the epoch (scikit-learn's
    ``invscaling``).

    Parameters
    ----------
    power_t : float, default 0.5
        The exponent, ``>= 0``.
    """

    power_t: float = 0.5

    def __post_init__(self) -> None:
        v.check_real("power_t", self.power_t, 0.0)

    def __call__(self, lr: float, epoch: int, samples: int) -> float:
        """The learning rate of epoch ``epoch`` (from 0), after ``samples`` samples."""
        return lr / (samples + 1) ** self.power_t


@dataclass(frozen=True)
class StepDecay:
    """``lr * gamma ** (epoch // step_size)``, epochs counted from 0 (PyTorch's ``StepLR``).

    Parameters
    ----------
    step_size : int, default 10
        Epochs between two decays, ``>= 1``.
    gamma : float, default 0.1
        The factor of each decay, in ``(0, 1]``.
    """

    step_size: int = 10
    gamma: float = 0.1

    def __post_init__(self) -> None:
        v.check_integer("step_size", self.step_size, 1)
        v.check_real("gamma", self.gamma, 0.0, 1.0, low_open=True, high_open=False)

    def __call__(self, lr: float, epoch: int, samples: int) -> float:
        """The learning rate of epoch ``epoch`` (from 0), after ``samples`` samples."""
        return lr * self.gamma ** (epoch // self.step_size)


Schedule = Constant | InverseScaling | StepDecay

#: Schedule names (each with its default parameters) for the ``schedule=`` arguments.
SCHEDULES: dict[str, type] = {"constant": Constant, "invscaling": InverseScaling,
                              "step": StepDecay}


def get_schedule(schedule: object) -> Schedule:
    """A schedule from a name in :data:`SCHEDULES` or a schedule instance."""
    if isinstance(schedule, Constant | InverseScaling | StepDecay):
        return schedule
    if isinstance(schedule, str) and schedule in SCHEDULES:
        return SCHEDULES[schedule]()
    raise ValueError(f"schedule must be one of {list(SCHEDULES)} or a schedule instance "
                     f"(Constant, InverseScaling, StepDecay), got {schedule!r}")


# -- optimizers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SGD:
    """Stochastic gradient descent, with optional (Nesterov) momentum.

    With momentum ``mu`` and learning rate ``lr``, for gradient ``g`` (Sutskever et al. 2013,
    as scikit-learn)::

        v <- mu v - lr g
        p <- p + v                  (classical momentum)
        p <- p + mu v - lr g        (Nesterov)

    and ``p <- p - lr g`` without momentum (no state kept).

    Parameters
    ----------
    learning_rate : float, default 0.01
        The initial learning rate, ``> 0``; the schedule scales it per epoch.
    momentum : float, default 0
        In ``[0, 1]``.
    nesterov : bool, default False
        Nesterov's momentum (needs ``momentum > 0``).
    schedule : str or schedule, default "constant"
        ``"constant"``, ``"invscaling"``, ``"step"`` (default parameters) or an instance of
        :class:`Constant`, :class:`InverseScaling`, :class:`StepDecay`.
    """

    learning_rate: float = 0.01
    momentum: float = 0.0
    nesterov: bool = False
    schedule: Schedule | str = "constant"

    kind = SGD_KIND

    def __post_init__(self) -> None:
        v.check_real("learning_rate", self.learning_rate, 0.0, low_open=True)
        v.check_real("momentum", self.momentum, 0.0, 1.0, high_open=False)
        if not isinstance(self.nesterov, bool | np.bool_):
            raise TypeError(f"nesterov must be a bool, got {self.nesterov!r}")
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        object.__setattr__(self, "schedule", get_schedule(self.schedule))

    def state_size(self, n_params: int) -> int:
        """Length of the optimizer's state for ``n_params`` parameters (the velocity)."""
        return n_params if self.momentum > 0 else 0

    def hyperparameters(self) -> np.ndarray:
        """``[momentum, nesterov]`` as :func:`step` reads them."""
        return np.array([self.momentum, float(self.nesterov)])


@dataclass(frozen=True)
class Adam:
    """Adam (Kingma and Ba 2015), in the paper's efficient form (section 2, as scikit-learn).

    At step ``t`` (from 1), for gradient ``g``::

        m <- beta_1 m + (1 - beta_1) g
        v <- beta_2 v + (1 - beta_2) g^2
        p <- p - lr sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)

    Parameters
    ----------
    learning_rate : float, default 0.001
        The initial learning rate, ``> 0``; the schedule scales it per epoch.
    beta_1, beta_2 : float, default 0.9, 0.999
        Decay rates of the moment estimates, in ``[0, 1)``.
    epsilon : float, default 1e-8
        Added to ``sqrt(v)``, ``> 0``.
    schedule : str or schedule, default "constant"
        As for :class:`SGD`.
    """

    learning_rate: float = 0.001
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8
    schedule: Schedule | str = "constant"

    kind = ADAM_KIND

    def __post_init__(self) -> None:
        v.check_real("learning_rate", self.learning_rate, 0.0, low_open=True)
        v.check_real("beta_1", self.beta_1, 0.0, 1.0)
        v.check_real("beta_2", self.beta_2, 0.0, 1.0)
        v.check_real("epsilon", self.epsilon, 0.0, low_open=True)
        object.__setattr__(self, "schedule", get_schedule(self.schedule))

    def state_size(self, n_params: int) -> int:
        """Length of the optimizer's state for ``n_params`` parameters (both moments)."""
        return 2 * n_params

    def hyperparameters(self) -> np.ndarray:
        """``[beta_1, beta_2, epsilon]`` as :func:`step` reads them."""
        return np.array([self.beta_1, self.beta_2, self.epsilon])


Optimizer = SGD | Adam

#: Optimizer names (each with its default hyperparameters) for ``fastprop.train``.
OPTIMIZERS: dict[str, type] = {"sgd": SGD, "adam": Adam}


def get_optimizer(optimizer: object) -> Optimizer:
    """An optimizer from a name in :data:`OPTIMIZERS` or an optimizer instance."""
    if isinstance(optimizer, SGD | Adam):
        return optimizer
    if isinstance(optimizer, str) and optimizer in OPTIMIZERS:
        return OPTIMIZERS[optimizer]()
    raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)} or an optimizer instance "
                     f"(fastprop.SGD, fastprop.Adam), got {optimizer!r}")


# -- the compiled update ----------------------------------------------------------------------


@jit
def _sgd(hyper, lr, params, grad, velocity):
    lr = params.dtype.type(lr)
    momentum = params.dtype.type(hyper[0])
    if velocity.shape[0] == 0:
        for k in range(params.shape[0]):
            params[k] -= lr * grad[k]
    elif hyper[1] != 0:
        for k in range(params.shape[0]):
            velocity[k] = momentum * velocity[k] - lr * grad[k]
            params[k] += momentum * velocity[k] - lr * grad[k]
    else:
        for k in range(params.shape[0]):
            velocity[k] = momentum * velocity[k] - lr * grad[k]
            params[k] += velocity[k]


@jit
def _adam(hyper, lr, t, params, grad, moments):
    n = params.dtype.type
    beta_1, beta_2, epsilon = n(hyper[0]), n(hyper[1]), n(hyper[2])
    m = moments[:params.shape[0]]
    v = moments[params.shape[0]:]
    rate = n(lr * math.sqrt(1.0 - hyper[1] ** t) / (1.0 - hyper[0] ** t))
    for k in range(params.shape[0]):
        g = grad[k]
        m[k] = beta_1 * m[k] + (n(1) - beta_1) * g
        v[k] = beta_2 * v[k] + (n(1) - beta_2) * (g * g)
        params[k] -= rate * m[k] / (math.sqrt(v[k]) + epsilon)


@jit
def step(kind, hyper, lr, t, params, grad, state):
    """One update of ``params`` (in place) from ``grad``, ``t`` the step number (from 1).

    ``kind`` is :data:`SGD_KIND` or :data:`ADAM_KIND`, ``hyper`` the optimizer's
    :meth:`~SGD.hyperparameters` (float64), ``lr`` this epoch's learning rate (float64), and
    ``state`` the optimizer's state (``state_size`` elements of the parameters' dtype, zeros at
    the start). Arithmetic is in the parameters' dtype, except Adam's bias correction (float64).
    """
    if kind == ADAM_KIND:
        _adam(hyper, lr, t, params, grad, state)
    else:
        _sgd(hyper, lr, params, grad, state)
