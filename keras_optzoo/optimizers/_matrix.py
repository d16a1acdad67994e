"""Matrix helpers shared by the matrix optimizers (keras.ops only).

SOAP's eigenbases: :func:`merged_shape` (merging small adjacent axes),
:func:`mode_gram` (the per-axis statistic ``G_(i) G_(i)^T``),
:func:`eigenbasis` (eigenvectors by descending eigenvalue, signs fixed),
:func:`qr_refresh` (one power-iteration step with QR, eigenvalue sorting)
and :func:`project` (applying one matrix per axis).
"""

import keras
from keras import ops


def merged_shape(shape, max_dim):
    """Adjacent axes merged while their product stays <= ``max_dim``.

    The rule of pytorch-optimizer's ``merge_small_dims``: a running product
    is closed off when the next axis would take it above ``max_dim``.
    ``(2, 3, 2)`` with ``max_dim=6`` gives ``(6, 2)``; ``(1024, 3, 3)`` with
    1024 gives ``(1024, 9)``. pytorch-optimizer turns a shape that merges
    into one axis into ``(1,)`` (so its reshape fails for more than one
    element); here such a shape merges into its one axis ``(numel,)``.
    """
    merged = []
    product = 1
    for dim in shape:
        product *= int(dim)
        if product > max_dim:
            merged.append(product // int(dim))
            product = int(dim)
    merged.append(product)
    return tuple(merged)


def mode_gram(x, axis):
    """``sum over the other axes of x[..i..] x[..j..]``: the ``(d, d)``
    Gram matrix of the mode-``axis`` unfolding of ``x``."""
    d = x.shape[axis]
    unfolded = ops.reshape(ops.moveaxis(x, axis, 0), (d, -1))
    return ops.matmul(unfolded, ops.transpose(unfolded))


def _compute_dtype(dtype):
    name = keras.backend.standardize_dtype(dtype)
    return name if name in ("float32", "float64") else "float32"


def fix_signs(q):
    """Each column multiplied by the sign of its entry of largest
    magnitude (the first such entry), so that a basis does not depend on
    the sign convention of a backend's eigensolver or QR."""
    index = ops.argmax(ops.abs(q), axis=0)
    pivot = ops.take_along_axis(q, ops.expand_dims(index, 0), axis=0)
    return q * ops.cast(ops.where(pivot < 0, -1.0, 1.0), q.dtype)


def eigenbasis(gram, epsilon=1e-30):
    """Eigenvectors of the symmetric ``gram + epsilon*I``, as columns
    ordered by descending eigenvalue, each column's sign fixed by
    :func:`fix_signs`. Computed in ``gram``'s dtype (float32 for half
    types) and returned in it."""
    dtype = gram.dtype
    work = ops.cast(gram, _compute_dtype(dtype))
    d = work.shape[0]
    work = work + ops.cast(epsilon, work.dtype) * ops.eye(d, dtype=work.dtype)
    _, vectors = ops.eigh(work)  # ascending
    vectors = ops.flip(vectors, axis=1)
    return ops.cast(fix_signs(vectors), dtype)


def qr_refresh(gram, basis):
    """One step of power iteration towards the eigenbasis of ``gram``.

    Returns ``(order, new_basis)``: ``order`` sorts the current basis's
    estimated eigenvalues ``diag(basis^T gram basis)`` in descending order
    (the caller reorders its second moments along this axis with it), and
    ``new_basis`` is the Q factor of ``(gram @ basis)[:, order]``, computed
    in float32 (as pytorch-optimizer does for every dtype), signs fixed by
    :func:`fix_signs`, in ``basis``'s dtype.
    """
    product = ops.matmul(gram, basis)
    estimate = ops.sum(basis * product, axis=0)
    order = ops.argsort(-estimate)
    power = ops.take(product, order, axis=1)
    q, _ = ops.qr(ops.cast(power, "float32"))
    return order, ops.cast(fix_signs(q), basis.dtype)


def project(x, bases, transpose=True):
    """``x`` with each axis ``i`` multiplied by ``bases[i]^T``
    (``transpose=True``, into the eigenbases) or by ``bases[i]``
    (back); a ``None`` basis leaves its axis as it is."""
    for basis in bases:
        if basis is None:
            x = ops.moveaxis(x, 0, -1)
        else:
            x = ops.tensordot(x, basis, axes=([0], [0 if transpose else 1]))
    return x
