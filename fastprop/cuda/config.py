"""Launch settings of the CUDA kernels.

Read when a kernel family is first built (:func:`fastprop.cuda.gemm.kernels` and the others are
cached per dtype), so a change here takes effect only for families built afterwards; the tests
patch these to tiny values and clear those caches, because the CUDA simulator runs one OS thread
per CUDA thread. On a GPU, the compiled kernels are also cached on disk: after changing a tile
size, delete the ``*.nbi``/``*.nbc`` files under ``fastprop/cuda/__pycache__``.
"""

from __future__ import annotations

#: Threads per block of the one-thread-per-element kernels (naive layers, checks, reductions).
#: A power of two (the reductions halve it).
THREADS_PER_BLOCK = 256
#: Most blocks of those kernels: each thread loops over every ``blocks * threads``-th element
#: beyond (a grid-stride loop), so a large grid runs one element per thread.
MAX_BLOCKS = 65535

#: Matrix-product tiles ``(BM, BN, BK, TM, TN)`` per dtype: a block computes a ``BM x BN`` tile
#: of the result in steps of ``BK`` along the inner dimension, each of its
#: ``(BM / TM) * (BN / TN)`` threads a ``TM x TN`` register block.
GEMM_TILES = {"float32": (128, 128, 8, 8, 8), "float64": (64, 64, 8, 4, 4)}
#: The weight-gradient product's tiles when every layer's weight matrix fits in one (a 64-wide
#: network would fill a quarter of a 128 x 128 tile).
GEMM_NARROW_TILES = {"float32": (64, 64, 8, 4, 4), "float64": (64, 64, 8, 4, 4)}

#: The weight-gradient products are split along the batch until there are about this many
#: blocks (deterministically: the split depends only on the sizes), e.g. 2 per SM of an H100.
TARGET_BLOCKS = 264
#: ... but no split gets fewer than this many samples.
MIN_SPLIT_ROWS = 256

#: The fused path runs when every layer width is at most this (and never above 128).
FUSED_MAX_WIDTH = 128
#: Threads per block of the fused kernel.
FUSED_THREADS = 256
#: Bytes of shared memory per dtype for each of the fused kernel's two sample buffers: a block
#: holds ``FUSED_ROW_BYTES // (itemsize * widest layer)`` samples at a time.
FUSED_ROW_BYTES = {"float32": 16384, "float64": 8192}
#: Bytes of shared memory per dtype for one layer's weights in the fused kernel; larger layers
#: are read from global memory (through the L1 cache) instead. With the sample buffers, at most
#: the 48 KiB that a block may declare.
FUSED_WEIGHT_BYTES = {"float32": 16384, "float64": 32768}
#: Register blocks of the fused kernel per dtype: each thread computes ``(samples, neurons)``
#: outputs at a time, reading each weight once for all its samples.
FUSED_BLOCKING = {"float32": (4, 4), "float64": (2, 2)}
#: Blocks of the fused kernel: each loops over groups of samples (a persistent grid).
FUSED_BLOCKS = 264
