"""fastprop: the loss and exact gradient of a multilayer perceptron, fast, from Python.

``import fastprop`` loads what describes and checks a network; the compiled kernels (and numba),
training, the estimators (and scikit-learn) and the GPU backends load on first use.
"""

from .backends import BACKENDS
from .gradcheck import gradient_check
from .io import load, save
from .network import MLP
from .threads import get_num_threads, set_num_threads

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

#: Public names whose module is imported on first use, by module.
_LAZY = {
    "optimizers": ("SGD", "Adam", "Constant", "InverseScaling", "StepDecay"),
    "training": ("EarlyStopping", "History", "TrainState", "train"),
    "estimators": ("MLPClassifier", "MLPRegressor"),
}
_LAZY_MODULES = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name: str):
    module = _LAZY_MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'fastprop' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
