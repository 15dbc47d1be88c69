"""Zero-cost 2-D views into flat arrays, for compiled code.

The kernels see every weight matrix, gradient block and activation buffer as a 2-D C-contiguous
view into a flat array. ``flat[start:stop].reshape(rows, cols)`` builds one, but numba's reshape
calls a C helper that costs about 16 ns per view; a gradient of a small network builds about 30,
which was a tenth of its time. :func:`matrix_view` builds the same view directly (0.7 ns), and
checks that it lies inside the flat array, as reshape does: a wrong offset raises instead of
viewing memory past the array.
"""

from __future__ import annotations

from numba import types
from numba.core import cgutils
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array

from .._jit import jit


@intrinsic
def _unchecked_view(typingctx, flat, start, rows, cols):
    """``flat[start:start + rows * cols]`` as a ``(rows, cols)`` C-contiguous array, sharing
    ``flat``'s memory and owner. No checks: see :func:`matrix_view`."""
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
        populate_array(view, data=cgutils.gep_inbounds(builder, source.data, start_value),
                       shape=[rows_value, cols_value],
                       strides=[builder.mul(cols_value, itemsize), itemsize],
                       itemsize=itemsize, meminfo=source.meminfo, parent=source.parent)
        return impl_ret_borrowed(context, builder, result, view._getvalue())

    return result(flat, start, rows, cols), codegen


@jit(inline="always")
def matrix_view(flat, start, rows, cols):
    """``flat[start:start + rows * cols].reshape(rows, cols)``, without reshape's cost.

    ``flat`` must be a 1-D C-contiguous array; raises ``IndexError`` if the view would not lie
    inside it.
    """
    if start < 0 or rows < 0 or cols < 0 or start + rows * cols > flat.shape[0]:
        raise IndexError("matrix_view outside the flat array")
    return _unchecked_view(flat, start, rows, cols)
