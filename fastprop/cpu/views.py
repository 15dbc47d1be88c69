"""Views for compiled code that cost nothing: no reshape helper, no reference counting.

The kernels see every weight matrix, gradient block and activation buffer as a view into a flat
array. Two costs of numba's own views add up on small networks:

- ``flat[start:stop].reshape(rows, cols)`` calls a C helper for every view, and a gradient of a
  small network builds dozens of views.
- Every view holds a reference to the flat array's owner, taken and released with atomic
  operations, and numba adds more of them each time a view is passed on or rebound. On a small
  network at batch 1 they are a large share of the gradient's time.

:func:`borrowed` returns an array without an owner: slices, rows and views of it carry no reference
either. It is only valid while the array it came from is alive, and must never be returned to
Python or stored: the kernels use borrowed views only inside one call, while their caller holds the
arrays. Each compiled entry point (the backends' ``value_and_grad``, ``loss`` and ``forward``, the
training epoch) borrows its array arguments on its first line, so that nothing below it counts
references: numba also takes a reference for every array argument of every call. :func:`matrix_view`
builds a borrowed 2-D view directly, and checks that it lies inside the flat array, as reshape
does.

numba compiles a function once per type of each argument, and an array's type includes its layout
and whether it is writeable. Two variants of :func:`borrowed` keep those from multiplying the
compiled code: the entry points borrow their input arrays with :func:`borrowed_input`, typed
writeable, so that a read-only input (a memory map) compiles the entry point again and nothing
below it; and the products pass their operands through :func:`any_layout`, so that each compiles
once for C-ordered operands and transposed views.
"""

from __future__ import annotations

from numba import types
from numba.core import cgutils
from numba.core.imputils import impl_ret_untracked
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array

from .._jit import jit


def _populate_borrowed(view, source, data, shape, strides, itemsize):
    """Fill the array struct ``view`` over ``data`` with no owner and no parent object."""
    populate_array(view, data=data, shape=shape, strides=strides, itemsize=itemsize,
                   meminfo=cgutils.get_null_value(source.meminfo.type),
                   parent=cgutils.get_null_value(source.parent.type))


def _borrow_as(array, result):
    """The typing and codegen of an intrinsic that returns ``array`` borrowed, typed
    ``result``."""

    def codegen(context, builder, signature, args):
        source = make_array(array)(context, builder, value=args[0])
        view = make_array(result)(context, builder)
        _populate_borrowed(view, source, source.data, cgutils.unpack_tuple(builder, source.shape),
                           cgutils.unpack_tuple(builder, source.strides), source.itemsize)
        return impl_ret_untracked(context, builder, result, view._getvalue())

    return result(array), codegen


@intrinsic
def borrowed(typingctx, array):
    """``array`` itself, without its owner reference (see the module notes)."""
    return _borrow_as(array, array)


@intrinsic
def borrowed_input(typingctx, array):
    """:func:`borrowed`, typed writeable whatever ``array``'s flag: an input array (read-only, say
    a memory map) then has the type of a writeable one, so that the kernels below an entry point
    compile once for both. Only for arrays that the kernels never write."""
    return _borrow_as(array, array.copy(readonly=False))


@intrinsic
def any_layout(typingctx, array):
    """:func:`borrowed`, typed with layout ``"A"`` (strides read at run time): a compiled function
    that takes it compiles once for C-ordered arrays and transposed views alike."""
    return _borrow_as(array, array.copy(layout="A"))


@intrinsic
def _unchecked_view(typingctx, flat, start, rows, cols):
    """``flat[start:start + rows * cols]`` as a borrowed ``(rows, cols)`` C-contiguous array.
    No checks: see :func:`matrix_view`."""
    result = types.Array(flat.dtype, 2, "C", readonly=not flat.mutable)

    def codegen(context, builder, signature, args):
        flat_value, start_value, rows_value, cols_value = args
        source = make_array(signature.args[0])(context, builder, value=flat_value)
        view = make_array(result)(context, builder)
        itemsize = context.get_constant(types.intp, context.get_abi_sizeof(
            context.get_data_type(signature.args[0].dtype)))
        rows_value = context.cast(builder, rows_value, signature.args[2], types.intp)
        cols_value = context.cast(builder, cols_value, signature.args[3], types.intp)
        start_value = context.cast(builder, start_value, signature.args[1], types.intp)
        _populate_borrowed(view, source, cgutils.gep_inbounds(builder, source.data, start_value),
                           [rows_value, cols_value], [builder.mul(cols_value, itemsize), itemsize],
                           itemsize)
        return impl_ret_untracked(context, builder, result, view._getvalue())

    return result(flat, start, rows, cols), codegen


@jit(inline="always")
def matrix_view(flat, start, rows, cols):
    """``flat[start:start + rows * cols].reshape(rows, cols)``, borrowed (see the module notes).

    ``flat`` must be a 1-D C-contiguous array; raises ``IndexError`` if the view would not lie
    inside it.
    """
    if start < 0 or rows < 0 or cols < 0 or start + rows * cols > flat.shape[0]:
        raise IndexError("matrix_view outside the flat array")
    return _unchecked_view(flat, start, rows, cols)
