"""fastprop: the loss and exact gradient of a multilayer perceptron, fast, from Python."""

from .backends import BACKENDS
from .gradcheck import gradient_check
from .network import MLP
from .threads import get_num_threads, set_num_threads

__all__ = ["BACKENDS", "MLP", "get_num_threads", "gradient_check", "set_num_threads"]
__version__ = "0.1.0"
