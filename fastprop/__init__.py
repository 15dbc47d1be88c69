"""fastprop: the loss and exact gradient of a multilayer perceptron, fast, from Python."""

from .backends import BACKENDS
from .gradcheck import gradient_check
from .network import MLP

__all__ = ["BACKENDS", "MLP", "gradient_check"]
__version__ = "0.1.0"
