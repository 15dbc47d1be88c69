"""fastprop: the loss and exact gradient of a multilayer perceptron, fast, from Python."""

from .backends import BACKENDS
from .gradcheck import gradient_check
from .io import load, save
from .network import MLP
from .optimizers import SGD, Adam, Constant, InverseScaling, StepDecay
from .threads import get_num_threads, set_num_threads
from .training import EarlyStopping, History, TrainState, train

__all__ = [
    "BACKENDS",
    "MLP",
    "SGD",
    "Adam",
    "Constant",
    "EarlyStopping",
    "History",
    "InverseScaling",
    "MLPClassifier",
    "MLPRegressor",
    "StepDecay",
    "TrainState",
    "get_num_threads",
    "gradient_check",
    "load",
    "save",
    "set_num_threads",
    "train",
]
__version__ = "0.1.0"

#: Names imported from :mod:`fastprop.estimators` on first use (it needs scikit-learn).
_ESTIMATORS = ("MLPClassifier", "MLPRegressor")


def __getattr__(name: str):
    if name in _ESTIMATORS:
        from . import estimators

        return getattr(estimators, name)
    raise AttributeError(f"module 'fastprop' has no attribute {name!r}")
