"""fastprop on a Dask cluster: the loss and exact gradient over Dask arrays, and training.

``import fastprop.dask`` needs Dask and distributed (``pip install "fastprop[dask]"``);
``import fastprop`` never loads them. The data are Dask arrays chunked along the samples; each
chunk is computed on a worker by fastprop's compiled backends, and the chunks' results are added
up in a tree of tasks on the workers and the driver. Without a client, the functions use the
current one or start a local cluster once per process (:func:`get_client`,
:func:`local_cluster`).
"""

from .cluster import close_embedded, get_client, local_cluster
from .gradient import forward, loss, value_and_grad
from .training import History, Objective, train

__all__ = [
    "History",
    "Objective",
    "close_embedded",
    "forward",
    "get_client",
    "local_cluster",
    "loss",
    "train",
    "value_and_grad",
]
