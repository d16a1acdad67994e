"""The multi-tensor expression compiler: TensorList, MATH and programs.

``_update`` receives :class:`TensorList` values (one tensor per variable of a
group) for ``param``, ``grad`` and the slots. A ``TensorList`` overloads the
arithmetic operators, and the few elementwise functions the optimizers call
go through :data:`MATH` (``ZooOptimizer._math``), which hands plain tensors
to ``keras.ops`` and ``TensorList`` values to this module. Scalar math (bias
corrections, schedules) stays ordinary ``keras.ops`` code on 0-d tensors.

A ``TensorList`` is lazy: the operators record an expression graph. When
``_update`` returns, :class:`_Program` compiles the graph into in-place
``torch._foreach_*`` calls: chains such as ``m + (1-β)(g - m)`` become one
``_foreach_lerp_``, ``v·β + c·g·g`` a ``_foreach_mul_`` and an
``_foreach_addcmul_``, ``θ - c·(m/d)`` an ``_foreach_addcdiv_``; a new slot or
parameter value is computed directly in the variable's storage when its old
value is not read afterwards, and the remaining temporaries live in a
workspace kept between steps (allocating fresh memory every step costs more
than the arithmetic on CPU).

This module knows no optimizer: it compiles whatever graph ``_update``
records.
"""


import keras
import numpy as np
from keras import ops

from keras_optzoo import _minmax

_TORCH_BACKEND = keras.backend.backend() == "torch"


class Unsupported(TypeError):
    """An operation a TensorList cannot express (the fast path is skipped)."""


class _Trace:
    """The nodes created while one group's update is traced, in order, and
    their structure (the key under which the compiled program is cached)."""

    def __init__(self, device_scalars=False, params=None):
        self.nodes = []
        self.signature = []
        #: the group's parameter tensors: their shapes are the "full" shape
        #: of every tensor (see ``TensorList.shapes``)
        self.params = params
        self._full = None
        #: the sub-graphs computed at once (reductions, matrix functions)
        self.subgraphs = []
        #: keep scalar operands as tensors (no host read; see ``_operand``)
        self.device_scalars = device_scalars
        #: the replay recorder of this trace (``replay.py``), if any: a
        #: per-tensor reduction is recorded as one call (``_Reduction``)
        self.recorder = None
        #: the group's scratch Workspace for the values a reduction computes
        #: at once (reset at the start of each step), or None
        self.scratch = None
        #: ``_Math.zero_where``'s bounds of each mask (by node position)
        self.zero_bounds = {}
        #: a recorded trace whose step may read the host (a CPU step): a
        #: ``where`` condition is read there and the recording keeps it as
        #: a guard (``Recorder.guard``), so that only one branch is computed
        self.host_selects = False
        #: a sub-graph's mirror (``_SubProgram``): comparisons are
        #: instructions of its program
        self.sub_program = False

    def finalize(self, outputs):
        """After ``_update``: lets each sub-graph computed at once plan how
        the steps that replay it compute its values (``_SubGraph.finalize``:
        the foreach program's instructions, in place where nothing else
        reads a value, and a slot's new value in the slot itself)."""
        if not self.subgraphs:
            return
        refs = {}

        def count(a):
            if isinstance(a, TensorList):
                refs[a.pos] = refs.get(a.pos, 0) + 1

        for node in self.nodes:
            for a in node.args:
                count(a)
        for subgraph in self.subgraphs:
            for root in subgraph.roots:
                count(root)  # read once computed
            for _, _, args, _ in subgraph.plan:
                for a in args:
                    count(a)
        for _, value in outputs:
            count(value)
        for subgraph in self.subgraphs:
            subgraph.finalize(refs, outputs)

    def full_shapes(self):
        """The parameters' shapes (made once per trace, where needed)."""
        if self._full is None:
            self._full = tuple(tuple(t.shape) for t in self.params)
        return self._full


class TensorList:
    """A lazily computed list of tensors, one per variable of a group.

    Arithmetic with another ``TensorList``, a Python number, a 0-d tensor (the
    same value for every variable) or a 1-D tensor with one value per variable
    records a node; nothing is computed until the group's program runs.
    """

    __array_ufunc__ = None  # numpy scalars defer to our reflected operators
    __slots__ = ("op", "args", "dtype", "n", "tensors", "trace", "pos",
                 "refs", "is_output", "absorbed", "instr", "dest_out", "hint",
                 "rows", "shapes")

    def __init__(self, op, args, dtype, n, trace, tensors=None, role=None,
                 shapes=None):
        self.op = op
        self.args = args
        self.dtype = dtype
        self.n = n
        self.tensors = tensors
        self.trace = trace
        self.pos = len(trace.nodes)
        trace.nodes.append(self)
        # the tensors' shapes where they are not the parameters' (a leaf:
        # given, for a slot of its own shape; a reduction along axes, a
        # view, or math on such values only, as broadcasting makes it),
        # None where they are
        self.shapes = shapes if op == "leaf" else _result_shapes(op, args,
                                                                 trace)
        # smaller than the parameters (keepdims-shaped, a factored
        # statistic): never computed into a full-size workspace buffer
        self.rows = op in _SHAPE_OPS or self.shapes is not None
        if op == "leaf":
            trace.signature.append(("leaf", role, self.rows))
        else:
            trace.signature.append((op, self.rows) + tuple(
                a.pos if isinstance(a, TensorList)
                else _scalar_kind(a, op)
                for a in args) + ((dtype,) if op == "cast" else ())
                + ((args[1],) if op in _SHAPE_OPS else ()))
        # planning state
        self.refs = 0
        self.is_output = False
        self.absorbed = False
        self.instr = None
        self.dest_out = None
        self.hint = None

    def __repr__(self):
        return f"TensorList({self.op}, n={self.n}, dtype={self.dtype})"

    # ------------------------------------------------------------ operands
    def _operand(self, value):
        if isinstance(value, TensorList):
            if value.trace is not self.trace:
                raise Unsupported("TensorLists from different groups")
            return value
        if isinstance(value, (bool, int, float, np.number)):
            return float(value)
        if isinstance(value, keras.Variable):
            value = value.value
        import torch

        if isinstance(value, torch.Tensor):
            if self.trace.device_scalars:
                # no host read: the kernels take the value as a tensor
                if value.ndim == 1 and value.shape[0] == self.n and \
                        isinstance(value, per_variable_class()):
                    return _PerVar(value)
                if value.ndim == 0:
                    return value
                raise Unsupported(
                    f"cannot combine a TensorList with a {value.ndim}-d "
                    "tensor")
            if value.ndim == 0:
                return float(value.item())
            if value.ndim == 1 and value.shape[0] == self.n and isinstance(
                    value, per_variable_class()):
                values = value.tolist()
                if all(v == values[0] for v in values):
                    return float(values[0])
                return tuple(float(v) for v in values)
        if isinstance(value, np.ndarray) and value.ndim == 0:
            return float(value)
        if isinstance(value, tuple) and len(value) == self.n and all(
                isinstance(v, (int, float)) for v in value):
            # one Python number per tensor (a shape-dependent constant)
            return tuple(float(v) for v in value)
        raise Unsupported(
            f"cannot combine a TensorList with {type(value).__name__}"
        )

    def _new(self, op, *args, dtype=None):
        return TensorList(op, args, dtype or self.dtype, self.n, self.trace)

    # commutative ops keep the TensorList first
    def __add__(self, other):
        return self._new("add", self, self._operand(other))

    def __radd__(self, other):
        return self._new("add", self, self._operand(other))

    def __mul__(self, other):
        return self._new("mul", self, self._operand(other))

    def __rmul__(self, other):
        return self._new("mul", self, self._operand(other))

    def __sub__(self, other):
        return self._new("sub", self, self._operand(other))

    def __rsub__(self, other):
        return self._new("sub", self._operand(other), self)

    def __truediv__(self, other):
        return self._new("div", self, self._operand(other))

    def __rtruediv__(self, other):
        return self._new("div", self._operand(other), self)

    def __neg__(self):
        return self._new("neg", self)

    def __pow__(self, exponent):
        if isinstance(exponent, (bool, int, float, np.number)):
            exponent = float(exponent)
        else:
            exponent = self._operand(exponent)
        if not isinstance(exponent, float):
            raise Unsupported("TensorList ** needs one scalar exponent")
        return self._new("pow", self, exponent)

    def __abs__(self):
        return self._new("abs", self)

    def __bool__(self):
        raise Unsupported("the truth value of a TensorList is undefined")

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        """``tensor * tensor_list`` and co.: torch asks us first, which is
        ten times cheaper than its fallback (a caught TypeError, then the
        reflected operator); anything else is refused."""
        name = _reflected().get(func)
        if name is not None and len(args) == 2 and not kwargs \
                and isinstance(args[1], TensorList):
            return getattr(args[1], name)(args[0])
        return NotImplemented


def condition_flags(tensor):
    """A ``where`` condition read on the host, one bool per element, outside
    the replay recorder (``Recorder.guard`` keeps it; ``Replay.run`` reads
    it again the same way)."""
    import torch

    with torch._C.DisableTorchFunction():
        return tuple(bool(c) for c in tensor.as_subclass(
            torch.Tensor).reshape(-1).tolist())


class _PerVar:
    """One scalar per variable, kept on the device (``device_scalars``);
    ``tensor`` is the 1-D value (of ``per_variable_class()``)."""

    __slots__ = ("tensor",)

    def __init__(self, tensor):
        self.tensor = tensor

    def __neg__(self):
        return _PerVar(-self.tensor)

    def values(self):
        import torch

        return list(self.tensor.as_subclass(torch.Tensor).unbind(0))


def _scalar_kind(a, op):
    """The structure key of a scalar operand (a compiled program depends on
    whether its scalars are numbers, tensors or one value per variable)."""
    if isinstance(a, tuple):
        return "t"
    if isinstance(a, float):
        return a if op == "pow" else "f"
    if isinstance(a, _PerVar):
        return "V"
    return "T"  # a 0-d tensor


def _is_device_scalar(x):
    return isinstance(x, _PerVar) or (
        not isinstance(x, (float, tuple, TensorList, str, list))
        and x is not None)


_REFLECTED = {}


def _reflected():
    """torch's binary Tensor methods -> our reflected operators."""
    if not _REFLECTED:
        import torch

        base = torch._C.TensorBase
        _REFLECTED.update({base.add: "__radd__", base.sub: "__rsub__",
                           base.mul: "__rmul__", base.div: "__rtruediv__"})
    return _REFLECTED


_PER_VARIABLE = []


def per_variable_class():
    """A torch.Tensor subclass for one scalar per variable of a group.

    The fast path hands a scalar slot to ``_update`` as such a 1-D tensor
    (the slot's values stacked). torch keeps the subclass through the ops
    applied to it, so a result derived from it is recognised as per-variable
    when combined with a TensorList, while any other 1-D tensor is not
    mistaken for one (the trace then fails and the per-variable path runs).
    """
    if not _PER_VARIABLE:
        import torch

        class PerVariable(torch.Tensor):
            pass

        _PER_VARIABLE.append(PerVariable)
    return _PER_VARIABLE[0]


# ------------------------------------------------------------------ MATH
class _Math:
    """The elementwise functions ``_update`` methods may call on per-variable
    values: ``keras.ops`` for tensors, lazy nodes for ``TensorList`` values."""

    @staticmethod
    def _unary(name, x):
        if isinstance(x, TensorList):
            return x._new("neg" if name == "negative" else name, x)
        return getattr(ops, name)(x)

    def sqrt(self, x):
        return self._unary("sqrt", x)

    def rsqrt(self, x):
        """``1 / sqrt(x)`` as one function (``ops.rsqrt``; on a TensorList
        ``torch._foreach_rsqrt``, torch's ``rsqrt`` kernel)."""
        return self._unary("rsqrt", x)

    def abs(self, x):
        return self._unary("abs", x)

    def sign(self, x):
        """torch's sign: 0 for NaN (JAX's and TF's sign give NaN). A NaN
        gradient element then freezes the parameter of a sign update (Lion,
        Rprop) instead of poisoning it, as in the torch references."""
        y = self._unary("sign", x)
        if isinstance(x, TensorList) or _TORCH_BACKEND:
            return y
        return ops.where(ops.isnan(y), ops.zeros_like(y), y)

    def negative(self, x):
        return self._unary("negative", x)

    def exp(self, x):
        return self._unary("exp", x)

    def log(self, x):
        return self._unary("log", x)

    def square(self, x):
        if isinstance(x, TensorList):
            return x._new("pow", x, 2.0)
        return ops.square(x)

    @staticmethod
    def _binary(name, x, y):
        if isinstance(x, TensorList):
            return x._new(name, x, x._operand(y))
        if isinstance(y, TensorList):
            return y._new(name, y, y._operand(x))
        # plain tensors: torch's semantics on every backend (dtype kept,
        # NaN propagated), which ``ops.maximum``/``ops.minimum`` lack
        return getattr(_minmax, name)(x, y)

    def maximum(self, x, y):
        return self._binary("maximum", x, y)

    def minimum(self, x, y):
        return self._binary("minimum", x, y)

    def _host_flags(self, tl, condition):
        """A ``where`` condition of a group (a bool, a 0-d tensor or one
        value per tensor) as a tuple of Python bools, one per tensor, where
        the step may read it on the host; None where it may not
        (``device_scalars`` without a recording to guard). Read while
        recording, it is kept as a guard: a replay whose condition differs
        is traced again."""
        if isinstance(condition, TensorList):
            raise Unsupported("where() with a per-element condition")
        if isinstance(condition, (bool, np.bool_)):
            return (bool(condition),) * tl.n
        if isinstance(condition, keras.Variable):
            condition = condition.value
        ndim = getattr(condition, "ndim", 0)
        per_var = ndim == 1 and isinstance(condition, per_variable_class())
        if ndim != 0 and not per_var:
            raise Unsupported("where() with a per-element condition")
        if not hasattr(condition, "ndim"):
            return (bool(condition),) * tl.n
        recorder = tl.trace.recorder
        if tl.trace.host_selects and recorder is not None:
            flags = condition_flags(condition)
            recorder.guard(condition, flags)
            return flags * tl.n if len(flags) == 1 else flags
        if tl.trace.device_scalars:
            return None
        if not per_var:
            return (bool(ops.convert_to_numpy(condition)),) * tl.n
        return tuple(bool(c) for c in condition.tolist())

    def where(self, condition, x, y):
        """A scalar condition selects a branch; per-element ones fall back.

        With ``device_scalars`` a tensor condition is not read on the host:
        both branches are computed and a ``where`` node selects per tensor.
        """
        if isinstance(x, TensorList) or isinstance(y, TensorList):
            tl = x if isinstance(x, TensorList) else y
            flags = self._host_flags(tl, condition)
            if flags is not None:
                return self._select(tl, flags, lambda: x, lambda: y)
            if isinstance(condition, keras.Variable):
                condition = condition.value
            # (a 1-d condition here holds one value per tensor: checked by
            # _host_flags)
            cond = _PerVar(condition) if condition.ndim == 1 \
                else condition.reshape(())
            x = tl._operand(x)
            y = tl._operand(y)
            return tl._new("where", cond, x, y)
        return ops.where(condition, x, y)

    def where_lazy(self, condition, x, y, like):
        """``where(condition, x(), y())`` for callables ``x`` and ``y`` that
        build the branches, each called only where it can be selected: on
        the fast path (``like``, a value of the step, is a TensorList) a
        condition read on the host (a guard of the recording, as in
        :meth:`where`) that selects one branch for every tensor of the group
        builds only that one. Elsewhere (per-variable and compiled steps,
        device scalars) both are built and selected as :meth:`where`
        does."""
        if isinstance(like, TensorList):
            flags = self._host_flags(like, condition)
            if flags is not None:
                return self._select(like, flags, x, y)
        return self.where(condition, x(), y())

    @staticmethod
    def _select(tl, flags, x, y):
        """The branch the host-known ``flags`` (one per tensor) select,
        built by calling ``x`` or ``y``; a per-tensor ``where`` node of
        both where the flags differ."""
        if all(flags):
            return x()
        if not any(flags):
            return y()
        return tl._new("where", flags, tl._operand(x()), tl._operand(y()))

    def zero_where(self, mask, x):
        """``x`` with 0 where the 0/1 ``mask`` is 1: a per-element ``where``
        on tensors. The foreach program has no per-element select, so on a
        TensorList it clips ``x`` to ``[b, -b]`` with ``b = (mask - 1) /
        mask``, which is ``[0, 0]`` where the mask is 1 and ``[-inf, inf]``
        elsewhere: the same values (inf and NaN included, up to the sign of
        a zero). (``b`` is ``log(mask)``, but torch's CPU ``log`` of 0 costs
        ~40 ns an element.) The bounds of one mask are made once per trace,
        however many values it zeroes."""
        if isinstance(mask, TensorList) or isinstance(x, TensorList):
            bounds = None
            if isinstance(mask, TensorList):
                cache = mask.trace.zero_bounds
                bounds = cache.get(mask.pos)
            if bounds is None:
                low = (mask - 1.0) / mask
                bounds = (low, self.negative(low))
                if isinstance(mask, TensorList):
                    cache[mask.pos] = bounds
            return self.minimum(self.maximum(x, bounds[0]), bounds[1])
        return ops.where(ops.greater(mask, 0.5), ops.zeros_like(x), x)

    def greater(self, x, y):
        """``x > y`` elementwise: a boolean mask for tensors; for a
        TensorList the same mask as 0/1 values of ``x``'s dtype (what the
        caution masks cast it to), and only as the input of a reduction
        (``mean(cast(x > 0, dtype))``): the foreach program itself has no
        comparison kernel."""
        if isinstance(x, TensorList):
            return x._new("greater", x, x._operand(y))
        if isinstance(y, TensorList):
            raise Unsupported("a scalar compared with a TensorList")
        return ops.greater(x, y)

    # ---- per-tensor reductions: a 0-d tensor for a tensor; for a
    # TensorList one value per tensor, as a 1-D ``per_variable_class()``
    # tensor that the scalar math and later TensorList arithmetic take as
    # per-variable scalars (see ``_Reduction``)

    def norm(self, x, axis=None, keepdims=False):
        """The 2-norm of a whole tensor, as torch's CPU ``Tensor.norm``
        computes it in float32: ``sqrt(sum(x**2))``, which overflows (1e30)
        and underflows (1e-30) as torch's does, except for a one-element
        tensor, whose norm torch returns as ``|x|`` exactly. On a TensorList:
        ``torch._foreach_norm`` (the same per-tensor norm).

        ``axis`` (with ``keepdims=True``): the norm over those axes only,
        ``sqrt(sum(x**2, axis))``; on a TensorList ``axis`` holds one tuple
        of axes per tensor (see :meth:`sum`), computed by
        ``torch.linalg.vector_norm``."""
        if isinstance(x, TensorList):
            if axis is not None:
                return _reduce_axes(x, "norm", axis, keepdims)
            return _reduce(x, "norm")
        if axis is not None:
            return ops.sqrt(ops.sum(ops.square(x), axis=axis,
                                    keepdims=keepdims))
        size = 1
        for dim in x.shape:
            # an unknown dimension (a densified IndexedSlices in a
            # tf.function) counts as more than one element
            size *= 2 if dim is None else int(dim)
        if size == 1:
            return ops.abs(ops.reshape(x, ()))
        return ops.sqrt(ops.sum(ops.square(x)))

    def sum(self, x, axis=None, keepdims=False):
        """The sum of a whole tensor, or over ``axis``.

        On a TensorList, ``axis`` (with ``keepdims=True``, so that the
        result broadcasts against the full tensors) holds one tuple of axes
        per tensor, since the tensors of a group differ in shape and layout
        (a channel's row is not along the same axes of a Dense kernel and a
        convolution kernel); an int, or one tuple of ints, means the same
        axes of every tensor (``-1``: each one's last axis). The result is
        a TensorList of the keepdims-shaped sums, which later arithmetic
        broadcasts per tensor.
        Computed at once (one ``torch.sum`` per tensor, a reduction along
        axes has no foreach kernel), like the whole-tensor reductions."""
        if isinstance(x, TensorList):
            if axis is not None:
                return _reduce_axes(x, "sum", axis, keepdims)
            return _reduce(x, "sum")
        return ops.sum(x, axis=axis, keepdims=keepdims)

    def mean(self, x, axis=None, keepdims=False):
        """The mean of a whole tensor (or over ``axis``), in float64 for
        float64 ``x``: Keras's type promotion makes ``ops.mean`` compute
        float64 inputs in float32 on the torch and JAX backends (a float64
        run then carries a ~1e-8 relative error); float32 values are
        ``ops.mean``'s, unchanged. On a TensorList ``axis`` (with
        ``keepdims=True``) is as for :meth:`sum` (``torch.mean`` per
        tensor)."""
        if isinstance(x, TensorList):
            if axis is not None:
                return _reduce_axes(x, "mean", axis, keepdims)
            return _reduce(x, "mean")
        if keras.backend.standardize_dtype(x.dtype) == "float64":
            axes = range(len(x.shape)) if axis is None else (
                axis if isinstance(axis, (tuple, list)) else (axis,))
            size = 1
            for a in axes:
                size *= int(x.shape[a])
            return ops.sum(x, axis=axis, keepdims=keepdims) / float(size)
        return ops.mean(x, axis=axis, keepdims=keepdims)

    def max(self, x):
        """The largest element of a whole tensor."""
        if isinstance(x, TensorList):
            return _reduce(x, "max")
        return ops.max(x)

    def amax(self, x):
        """The largest element of a whole tensor, NaN if any element is NaN
        on every backend (``_minmax.amax``; torch's ``amax`` per tensor on a
        TensorList)."""
        if isinstance(x, TensorList):
            return _reduce(x, "max")
        return _minmax.amax(x)

    # ---- a function of whole matrices (matrix products, Newton-Schulz)

    def per_matrix(self, fn, x, views):
        """``fn`` applied to each tensor of ``x`` as a matrix: on a tensor
        ``fn(x)``, or ``view.from_torch(fn(view.to_torch(x)))`` where
        ``views`` is a :class:`~keras_optzoo.layout.Layout` (or a
        :class:`~keras_optzoo.layout.MatrixView`; ``None``: the tensor as
        stored), exactly the per-variable computation.

        On a TensorList ``views`` holds one layout (or None) per tensor; the
        sub-graph below ``x`` is computed at once (as for a reduction), the
        tensors of equal (viewed) shape and dtype are stacked and ``fn``
        runs once per shape on the stack (``fn`` must treat the leading axis
        as a batch, as ``_matrix.newton_schulz`` does: ``torch.matmul`` on a
        3-D stack is one batched product), and the result is a TensorList
        of the values, mapped back through the views, that later
        arithmetic reads like any other. A group's tensors of different
        shapes cost one ``fn`` call per shape.

        Several values per variable (a matrix and a statistic of its rows,
        say): ``x`` a tuple of values and ``views`` a tuple of the same
        length, one entry per value (on a TensorList one layout per tensor,
        or None for every tensor as stored). ``fn`` then takes one argument
        per value and returns a tuple of one result per value, each of that
        value's (viewed) shape, mapped back through that value's views (a
        ``(rows, 1)`` slot passed as stored comes back as the slot's new
        value); stacks are formed per distinct combination of shapes.
        """
        several = isinstance(x, tuple)
        values = x if several else (x,)
        if any(isinstance(v, TensorList) for v in values):
            if not several:
                return _per_matrix(values, fn, (views,), several)[0]
            if not (isinstance(views, tuple) and len(views) == len(values)):
                raise Unsupported("per_matrix takes one views entry per "
                                  "value of x")
            return _per_matrix(values, fn, views, several)
        if not several:
            views = (views,)
        mats = [v if view is None else view.to_torch(v)
                for v, view in zip(values, views)]
        results = fn(*mats)
        if not several:
            results = (results,)
        results = tuple(r if view is None else view.from_torch(r)
                        for r, view in zip(results, views))
        return results if several else results[0]

    # ---- per-tensor views (a factored statistic in another layout)

    def reshape(self, x, shape):
        """``ops.reshape(x, shape)``; on a TensorList ``shape`` holds one
        shape per tensor (``None``: that tensor unchanged), and ``x`` must
        hold values smaller than the parameters (keepdims-shaped or a slot
        of its own shape, ``TensorList.rows``): a view, computed out of
        place, never into the full-size workspace buffers."""
        if isinstance(x, TensorList):
            return _view(x, "reshape", shape)
        return ops.reshape(x, shape)

    def transpose(self, x, axes):
        """``ops.transpose(x, axes)``; on a TensorList ``axes`` holds one
        permutation per tensor (``None``: unchanged), as for
        :meth:`reshape`."""
        if isinstance(x, TensorList):
            return _view(x, "transpose", axes)
        return ops.transpose(x, axes)

    def constant(self, values, dtype):
        """A Python float as a 0-d tensor of ``dtype`` (converted directly,
        not through float32); a tuple of floats, one per variable of a
        fast-path group (a shape-dependent threshold, say), as a 1-D tensor
        on Keras's device. That tensor is not marked per-variable (a
        recording of the step could not follow the marking): combine it
        with a per-variable value, such as a per-tensor reduction, whose
        marking the result keeps."""
        if isinstance(values, tuple):
            values = list(values)
        return ops.convert_to_tensor(values, dtype=dtype)

    def cast(self, x, dtype):
        if not isinstance(x, TensorList):
            return ops.cast(x, dtype)
        import torch

        target = getattr(torch, keras.backend.standardize_dtype(dtype))
        if target == x.dtype:
            return x
        return x._new("cast", x, dtype=target)


MATH = _Math()


# ------------------------------------------------------------ reductions
#
# A per-tensor reduction needs the values of the TensorList it reduces while
# ``_update`` is still running (its result feeds the scalar math: trust
# ratios, caution scales). So the sub-graph below it is computed at once, by
# plain out-of-place foreach calls, and each of its nodes becomes a leaf
# holding its value: the program compiled at the end of the trace reads
# those values instead of computing them again (a slot's new value computed
# there is copied into the slot like any leaf). Nothing is written to a
# variable: the reduced values are scratch tensors.
#
# The whole computation is one callable, ``_Reduction``; the replay recorder
# sees it as one call whose arguments are the tensor scalars of the
# sub-graph, so a replayed step computes it again on the step's gradients
# and scalars, in the recorded order, before the program runs.

def _reduce(x, kind):
    import torch

    reduction = _Reduction(x, kind)
    recorder = x.trace.recorder
    if recorder is None:
        return reduction(*reduction.inputs)
    with torch._C.DisableTorchFunction():  # the recorder sees one call
        out = reduction(*reduction.inputs)
    recorder.observe(reduction, tuple(reduction.inputs), {}, out)
    return out


#: reductions along axes (one tuple of axes per tensor), keepdims-shaped
_AXES_OPS = {"sum_axes": "sum", "norm_axes": "norm", "mean_axes": "mean"}
#: per-tensor views (one shape or permutation per tensor)
_VIEW_OPS = frozenset({"reshape", "transpose"})
#: the ops whose second argument is per-tensor structure (part of a
#: program's key), not a scalar operand
_SHAPE_OPS = frozenset(_AXES_OPS) | _VIEW_OPS


def _reduce_axes(x, kind, axis, keepdims):
    """``kind`` ("sum", "norm", "mean") of every tensor of ``x`` over its
    own axes (``axis[i]`` for tensor i; an int or a tuple of ints: the same
    for every tensor), keepdims-shaped: a lazy node, computed by the
    program only where its value is used (a ``where`` that the host
    resolves for the whole group leaves the other branch's rows
    uncomputed), or at once when a per-tensor reduction needs it."""
    if not keepdims:
        raise Unsupported("a reduction along axes needs keepdims=True")
    if isinstance(axis, int):
        axis = (axis,)
    if isinstance(axis, tuple) and all(isinstance(a, int) for a in axis):
        axis = (axis,) * x.n
    if not (isinstance(axis, tuple) and len(axis) == x.n and all(
            isinstance(a, tuple) for a in axis)):
        raise Unsupported("a reduction of a TensorList along axes takes one "
                          "tuple of axes per tensor")
    return x._new(kind + "_axes", x, axis)


def _view(x, kind, per_tensor):
    """A per-tensor view node (``MATH.reshape``/``MATH.transpose``)."""
    if not (isinstance(per_tensor, tuple) and len(per_tensor) == x.n and all(
            p is None or (isinstance(p, tuple) and all(
                isinstance(d, int) for d in p)) for p in per_tensor)):
        raise Unsupported(f"a {kind} of a TensorList takes one tuple of "
                          "ints (or None) per tensor")
    if not x.rows:
        # a view of a full-size value would alias a workspace buffer that
        # the program may hand to another step before the view is read
        raise Unsupported(f"a {kind} of a full-size TensorList")
    return x._new(kind, x, per_tensor)


def _along_axes(kind, tensors, axes):
    """The keepdims-shaped sums, means or 2-norms of each tensor over its
    axes (a reduction along axes has no foreach kernel: one call per
    tensor). No axes: the tensor itself (a copy)."""
    import torch

    if kind == "norm":
        fn = lambda t, a: torch.linalg.vector_norm(  # noqa: E731
            t, 2, dim=a, keepdim=True)
    else:
        fn = lambda t, a: getattr(torch, kind)(  # noqa: E731
            t, dim=a, keepdim=True)
    return [fn(t, a) if a else t.clone() for t, a in zip(tensors, axes)]


def _along_views(kind, tensors, per_tensor):
    """The per-tensor views (``t.reshape(shape)``, ``t.permute(axes)``)."""
    if kind == "reshape":
        return [t if p is None else t.reshape(p)
                for t, p in zip(tensors, per_tensor)]
    return [t if p is None else t.permute(p)
            for t, p in zip(tensors, per_tensor)]


def _result_shapes(op, args, trace):
    """``TensorList.shapes`` of a new node: None where every tensor has
    its parameter's shape (the usual case, decided without looking at any
    shape), else one shape per tensor."""
    lists = [a for a in args if isinstance(a, TensorList)]
    if op in _AXES_OPS or op in _VIEW_OPS:
        x, per_tensor = args[0], args[1]
        base = x.shapes or trace.full_shapes()
        if op == "reshape":
            return tuple(b if p is None else p
                         for b, p in zip(base, per_tensor))
        if op == "transpose":
            return tuple(b if p is None else tuple(b[a] for a in p)
                         for b, p in zip(base, per_tensor))
        return tuple(tuple(1 if (d in axes or d - len(b) in axes) else size
                           for d, size in enumerate(b))
                     for b, axes in zip(base, per_tensor))
    if not lists or any(a.shapes is None for a in lists):
        return None
    if len(lists) == 1:
        return lists[0].shapes
    import torch

    shapes = tuple(tuple(torch.broadcast_shapes(*each))
                   for each in zip(*(a.shapes for a in lists)))
    return None if shapes == trace.full_shapes() else shapes


class _SubGraph:
    """The sub-graph below a TensorList computed at once (out of place,
    into the scratch workspace where it can), each of its nodes turned
    into a leaf holding its value; the base of the calls that need the
    values while ``_update`` runs (``_Reduction``, ``_PerMatrix``)."""

    _UNARY = frozenset({"neg", "abs", "sqrt", "rsqrt", "sign", "exp",
                        "log"})

    def __init__(self, x):
        # ``x``: a TensorList, or a sequence of them (the roots)
        roots = list(x) if isinstance(x, (tuple, list)) else [x]
        self.roots = roots
        x = roots[0]
        # the values written into kept buffers: fresh memory for every
        # operation's result costs several times the arithmetic on the CPU
        # (page faults: a 400 kB tensor, or the heap trimmed between steps)
        self.scratch = x.trace.scratch
        self.target = x
        self.n = x.n
        self.inputs = []  # the tensor scalars of the sub-graph
        self.per_var = []  # which of them hold one value per tensor
        seen = {}
        stack = list(roots)
        while stack:
            node = stack.pop()
            if node.op == "leaf" or node.pos in seen:
                continue
            seen[node.pos] = node
            stack.extend(a for a in node.args if isinstance(a, TensorList))
        self.plan = []
        for node in (seen[p] for p in sorted(seen)):
            if node.op not in _EVAL_OPS:
                raise Unsupported(
                    f"{node.op!r} before a reduction or a matrix function")
            args = []
            for a in node.args:
                if isinstance(a, TensorList):
                    args.append(a)
                elif isinstance(a, _PerVar) or _is_device_scalar(a):
                    per_var = isinstance(a, _PerVar)
                    self.inputs.append(a.tensor if per_var else a)
                    self.per_var.append(per_var)
                    args.append(("in", len(self.inputs) - 1, per_var))
                else:
                    args.append(a)  # a float, or a tuple of floats
            self.plan.append((node, node.op, args, node.dtype))
            # from now on a leaf holding its value (set by each call)
            node.op, node.args, node.tensors = "leaf", (), None
        self.traced = False
        #: the plan entries computed in their first operand's scratch
        #: buffer (``finalize``; none while tracing)
        self.in_place = frozenset()
        #: what ``finalize`` learnt of the whole trace, and the foreach
        #: program built from it on the first replayed call (False: the
        #: sub-graph has an op that program cannot compute)
        self._whole = None
        self._compiled = None
        #: set by the replay before each call: the scalars may reach the
        #: kernels as Python numbers (a CPU step that may read the host)
        self.host_floats = False
        x.trace.subgraphs.append(self)

    def finalize(self, refs, outputs=()):
        """Decides, once the trace is complete, which values are computed
        in place: an elementwise op whose first operand is a full-size
        value of this sub-graph that nothing else reads (``refs``: the
        readers of every node of the trace) overwrites that operand's
        scratch buffer instead of copying it first. Same arithmetic, one
        pass over memory less."""
        mine = {node.pos for node, _, _, _ in self.plan}
        chosen = set()
        for i, (node, op, args, dtype) in enumerate(self.plan):
            acc = args[0] if args else None
            if (op in _IN_PLACE_OPS and isinstance(acc, TensorList)
                    and acc.pos in mine and refs.get(acc.pos) == 1
                    and acc is not self.target and not node.rows
                    and not acc.rows and acc.dtype == dtype):
                chosen.add(i)
        self.in_place = frozenset(chosen)
        self._whole = (refs, tuple(outputs))
        self._compiled = None

    def _compute(self, inputs):
        """Computes the sub-graph's values into its nodes (now leaves)."""
        import torch

        if self._whole is not None and self.scratch is not None:
            compiled = self._compiled
            if compiled is None or (compiled is not False
                                    and compiled.host != self.host_floats):
                try:
                    compiled = _SubProgram(self, self.host_floats)
                except Unsupported:
                    compiled = False
                self._compiled = compiled
            if compiled is not False:
                compiled.run(inputs)
                return
        n = self.n
        scalars = []
        for value, per_var in zip(inputs, self.per_var):
            if isinstance(value, torch.Tensor):
                value = value.as_subclass(torch.Tensor)
            scalars.append(list(value.unbind(0)) if per_var else value)
        scratch = set()  # the values computed into scratch buffers
        for i, (node, op, args, dtype) in enumerate(self.plan):
            if i in self.in_place and args[0].pos in scratch:
                buf = args[0].tensors
                if op in _SubGraph._UNARY:
                    getattr(torch, f"_foreach_{op}_")(buf)
                else:
                    other = args[1]
                    if isinstance(other, TensorList):
                        other = other.tensors
                    elif isinstance(other, tuple) and other and \
                            other[0] == "in":
                        other = scalars[other[1]]
                    elif isinstance(other, tuple):
                        other = list(other)
                    _k_binary(buf, (op, other))
                node.tensors = buf
                scratch.add(node.pos)
                continue
            vals = []
            is_list = []
            for a in args:
                is_list.append(isinstance(a, TensorList))
                if isinstance(a, TensorList):
                    vals.append(a.tensors)
                elif isinstance(a, tuple) and a and a[0] == "in":
                    vals.append(scalars[a[1]])
                elif isinstance(a, tuple):
                    vals.append(list(a))
                else:
                    vals.append(a)
            if self.scratch is not None and not node.rows:
                buf = self.scratch.take(dtype)
                if _evaluate_into(op, vals, is_list, buf,
                                  self.scratch.large):
                    node.tensors = buf
                    scratch.add(node.pos)
                    continue
                self.scratch.give(buf)
            # (a list: the kernels take a tuple of tensors for a scalar)
            node.tensors = list(_evaluate(op, vals, is_list, n, dtype))


class _SubProgram:
    """A sub-graph's values computed by the foreach program (``_Program``)
    instead of one operation per node: its instructions (lerp, addcmul,
    addcdiv, axpy absorb the nodes only they read), a value computed in
    its operand's buffer where nothing else reads that operand, and a
    slot's new value computed in the slot's own storage where nothing
    after the sub-graph reads the slot's old value (the step then copies
    nothing into it). Built from the whole trace (``_SubGraph.finalize``)
    on the first replayed call: a mirror of the sub-graph's nodes in a
    trace of their own, whose leaves are the values it reads (refreshed at
    each call) and whose scalar operands are the call's inputs.
    """

    def __init__(self, subgraph, host):
        refs, outputs = subgraph._whole
        self.host = host
        self.subgraph = subgraph
        plan = subgraph.plan
        trace = subgraph.target.trace
        mine = {node.pos for node, _, _, _ in plan}
        inside = {}
        for _, _, args, _ in plan:
            for a in args:
                if isinstance(a, TensorList):
                    inside[a.pos] = inside.get(a.pos, 0) + 1

        def outside(pos):  # reads by anything computed after the sub-graph
            return refs.get(pos, 0) - inside.get(pos, 0)

        mirror = _Trace(trace.device_scalars, trace.params)
        mirror.sub_program = True
        shadow, self.leaves, self.scalars = {}, [], []
        for node, op, args, dtype in plan:
            margs, pending = [], []
            for i, a in enumerate(args):
                if isinstance(a, TensorList):
                    m = shadow.get(a.pos)
                    if m is None:
                        m = TensorList("leaf", (), a.dtype, subgraph.n,
                                       mirror, a.tensors, ("read", a.pos),
                                       a.shapes)
                        shadow[a.pos] = m
                        self.leaves.append((m, a))
                    margs.append(m)
                elif isinstance(a, tuple) and a and a[0] == "in":
                    keep = op == "where" or not host  # a condition stays
                    pending.append((i, a[1], a[2], keep))
                    margs.append(self._scalar(subgraph.inputs[a[1]], a[2],
                                              keep))
                else:
                    margs.append(a)
            m = TensorList(op, tuple(margs), dtype, subgraph.n, mirror)
            shadow[node.pos] = m
            self.scalars.extend((m,) + p for p in pending)
        roots = {r.pos for r in subgraph.roots}
        dests = {}
        for dest, value in outputs:
            if isinstance(value, TensorList) and value.pos in mine:
                dests.setdefault(value.pos, []).append(dest)
        if trace.recorder is not None and trace.recorder.guards:
            # a replay may still find a guard changed after this call and
            # trace the step again from the slots' old values
            dests = {}
        old = {id(node.tensors): node for node in trace.nodes
               if node.op == "leaf" and node.pos not in mine
               and node.tensors is not None}
        self.outputs, self.kept = [], []
        for node, _, _, _ in plan:
            if node.pos not in roots and outside(node.pos) <= 0:
                continue
            dest = None
            mine_dests = dests.get(node.pos, ())
            if len(mine_dests) == 1 and not node.rows:
                leaf = old.get(id(mine_dests[0]))
                if leaf is None or outside(leaf.pos) <= 0:
                    # nothing after the sub-graph reads the slot's old
                    # value: its new value may be written there now
                    dest = mine_dests[0]
            self.outputs.append((dest, shadow[node.pos]))
            self.kept.append(node)
        self.nodes = mirror.nodes
        self.program = _Program(mirror.nodes, self.outputs)

    @staticmethod
    def _scalar(value, per_var, keep):
        if keep:
            return _PerVar(value) if per_var else value
        if per_var:
            return tuple(float(v) for v in value.tolist())
        return float(value)

    def run(self, inputs):
        for m, real in self.leaves:
            m.tensors = real.tensors
        for m, i, k, per_var, keep in self.scalars:
            args = list(m.args)
            args[i] = self._scalar(inputs[k], per_var, keep)
            m.args = tuple(args)
        bufs = self.program.run(self.nodes, self.outputs,
                                self.subgraph.scratch, reset=False)
        for real, (dest, m) in zip(self.kept, self.outputs):
            real.tensors = dest if dest is not None else bufs[m.pos]


class _Reduction(_SubGraph):
    """Computes ``kind`` of every tensor of a TensorList (and the
    sub-graph's values, kept in its nodes, now leaves)."""

    #: mean elements per tensor from which a CPU step sums each tensor
    #: (``torch.sum``, as the per-variable path) rather than take the
    #: 1-norm: torch's CPU ``_foreach_norm(x, 1)`` runs a slow generic
    #: kernel per tensor (1e5 float32 values: ~0.3-0.8 ms against ~10 us
    #: for ``torch.sum``; even with 1000 tensors of 1000 values the Python
    #: loop of sums is not slower)
    SUM_EACH = 4096
    _sum_each_cached = None

    def _sum_each(self, values):
        if self._sum_each_cached is None:
            self._sum_each_cached = values[0].device.type == "cpu" and sum(
                t.numel() for t in values) >= self.SUM_EACH * len(values)
        return self._sum_each_cached

    def __init__(self, x, kind):
        super().__init__(x)
        self.kind = kind
        x = self.target
        self.sizes = None  # the tensors' sizes (a mean), made once
        # values known to be >= 0 (or NaN): a mask, an absolute value, a
        # square (their sum is a 1-norm)
        # (the target, when computed here, is the plan's last node)
        last = self.plan[-1] if self.plan and self.plan[-1][0] is x else None
        self.nonnegative = last is not None and (
            last[1] in ("greater", "abs", "sqrt")
            or (last[1] == "pow" and last[2][1] == 2.0))

    def __call__(self, *inputs):
        import torch

        self._compute(inputs)
        values = self.target.tensors
        kind = self.kind
        if kind == "norm":
            out = torch.stack(torch._foreach_norm(values))
        elif kind in ("sum", "mean") and self.nonnegative and \
                not self._sum_each(values):
            # a sum of non-negative values is their 1-norm: one foreach
            # kernel instead of one reduction per tensor
            out = torch.stack(torch._foreach_norm(values, 1))
            if kind == "mean":
                if self.sizes is None:
                    self.sizes = torch.tensor(
                        [float(t.numel()) for t in values],
                        dtype=out.dtype, device=out.device)
                out = out / self.sizes
        else:
            fn = {"sum": torch.sum, "mean": torch.mean}.get(kind, torch.amax)
            out = torch.stack([fn(t) for t in values])
        if not self.traced:  # while tracing: marked per-variable (a replay
            self.traced = True  # uses plain tensors, as ``_per_variable``)
            return out.as_subclass(per_variable_class())
        return out


#: the ops a sub-graph may compute in its first operand's buffer (those
#: ``_evaluate_into`` computes as a copy then the in-place foreach kernel)
_IN_PLACE_OPS = frozenset({"add", "sub", "mul", "div", "maximum",
                           "minimum"}) | _SubGraph._UNARY

_EVAL_OPS = frozenset({"add", "sub", "mul", "div", "maximum", "minimum",
                       "pow", "where", "cast", "greater"}) | \
    _SubGraph._UNARY | _SHAPE_OPS


def _per_matrix(xs, fn, views, several):
    """``_Math.per_matrix`` on TensorLists ``xs`` (one or several values
    per variable): one recorded call (the replay computes it again on the
    step's values, like a reduction) whose results are new leaves, one per
    value."""
    import torch

    first = next(x for x in xs if isinstance(x, TensorList))
    n = first.n
    for x in xs:
        if not isinstance(x, TensorList) or x.trace is not first.trace:
            raise Unsupported("a matrix function of values that are not "
                              "TensorLists of one group")
    per_value = []
    for view in views:
        if view is None:
            view = (None,) * n
        if not (isinstance(view, (tuple, list)) and len(view) == n):
            raise Unsupported("a matrix function of a TensorList takes one "
                              "layout (or None) per tensor")
        per_value.append(tuple(view))
    call = _PerMatrix(xs, fn, per_value, several)
    recorder = first.trace.recorder
    if recorder is None:
        out = call(*call.inputs)
    else:
        with torch._C.DisableTorchFunction():  # the recorder sees one call
            out = call(*call.inputs)
        recorder.observe(call, tuple(call.inputs), {}, out)
    leaves = []
    for k, x in enumerate(xs):
        tensors = out[k * n:(k + 1) * n]
        # each result has its value's shape: a keepdims-shaped value
        # (NorMuon's (rows, 1) statistic) gives a result of that shape
        leaf = TensorList("leaf", (), tensors[0].dtype, n, first.trace,
                          tensors, "matrix", x.shapes)
        leaves.append(leaf)
    call.leaves = leaves  # a replayed call refreshes their values
    return tuple(leaves)


class _PerMatrix(_SubGraph):
    """Computes the sub-graph below the values ``xs``, then ``fn`` on their
    tensors' matrices, stacked by shape: one ``fn`` call per distinct
    combination of shapes. Returns the results as one flat list (value 0's
    tensors, then value 1's ...)."""

    def __init__(self, xs, fn, views, several):
        super().__init__(xs)
        self.xs = xs
        self.fn = fn
        self.views = views  # per value: one layout (or None) per tensor
        self.several = several
        self.leaves = None
        self.batches = None  # [(positions)], by shapes and dtypes, made once

    def __call__(self, *inputs):
        import torch

        self._compute(inputs)
        mats = [[t if v is None else v.to_torch(t)
                 for t, v in zip(x.tensors, views)]
                for x, views in zip(self.xs, self.views)]
        if self.batches is None:
            by_shape = {}
            for i in range(self.n):
                key = tuple((tuple(m[i].shape), m[i].dtype) for m in mats)
                by_shape.setdefault(key, []).append(i)
            self.batches = list(by_shape.values())
        k = len(self.xs)
        out = [None] * (k * self.n)
        for positions in self.batches:
            if len(positions) == 1:
                i = positions[0]
                results = self.fn(*[m[i] for m in mats])
                results = [(r,) for r in (
                    results if self.several else (results,))]
            else:
                results = self.fn(*[torch.stack([m[i] for i in positions])
                                    for m in mats])
                results = [r.unbind(0) for r in (
                    results if self.several else (results,))]
            if len(results) != k:
                raise Unsupported("a matrix function must return one result "
                                  "per value it takes")
            for j, (per_pos, views) in enumerate(zip(results, self.views)):
                for i, r in zip(positions, per_pos):
                    v = views[i]
                    out[j * self.n + i] = r if v is None else v.from_torch(r)
        if self.leaves is not None:
            for j, leaf in enumerate(self.leaves):
                leaf.tensors = out[j * self.n:(j + 1) * self.n]
        return out


def _per_tensor(value, n):
    """A scalar operand as a per-tensor list (a number or 0-d tensor
    repeated; a list of numbers or 0-d tensors is one already)."""
    return value if isinstance(value, list) else [value] * n


def _evaluate_into(op, vals, is_list, buf, large):
    """``_evaluate`` written into ``buf`` (full-size tensors), for the
    common ops with a TensorList first; False (nothing written) for the
    others. ``large``: one ``out=`` call per tensor (one pass over memory),
    else a foreach copy and the in-place foreach kernel (two passes, no
    Python loop over the tensors)."""
    import torch

    unary = op in _SubGraph._UNARY
    if op == "greater" and is_list[0] and isinstance(vals[1], float):
        # as ``_evaluate``: x > c  <=>  sign(x - c) = 1, into ``buf``
        c = vals[1]
        if large:
            for b, t in zip(buf, vals[0]):
                if c == 0.0:
                    torch.sign(t, out=b)
                else:
                    torch.sub(t, c, out=b).sign_()
        else:
            torch._foreach_copy_(buf, vals[0])
            if c != 0.0:
                torch._foreach_sub_(buf, c)
            torch._foreach_sign_(buf)
        torch._foreach_clamp_min_(buf, 0.0)
        return True
    if not unary and (op not in ("add", "sub", "mul", "div", "maximum",
                                 "minimum") or not is_list[0]):
        return False
    if not large:
        torch._foreach_copy_(buf, vals[0])  # (broadcasts a keepdims one)
        if unary:
            getattr(torch, f"_foreach_{op}_")(buf)
        else:
            _k_binary(buf, (op, vals[1]))
        return True
    if unary:
        fn = getattr(torch, op)
        for b, t in zip(buf, vals[0]):
            fn(t, out=b)
        return True
    other = vals[1]
    fn = getattr(torch, op)
    if not is_list[1]:
        if op in ("maximum", "minimum"):
            # torch.maximum takes no number: clamp (NaN propagated alike)
            fn = torch.clamp_min if op == "maximum" else torch.clamp_max
        if not isinstance(other, list):
            other = [other] * len(buf)
    for b, t, o in zip(buf, vals[0], other):
        fn(t, o, out=b)
    return True


def _evaluate(op, vals, is_list, n, dtype):
    """One node's value, out of place. ``vals``: its operands, a list of
    tensors where ``is_list`` says so (a TensorList's value), else a scalar:
    a number, a 0-d tensor, or a list of numbers or 0-d tensors (one per
    tensor)."""
    import torch

    if op in _SubGraph._UNARY:
        return getattr(torch, f"_foreach_{op}")(vals[0])
    if op in _AXES_OPS:
        return _along_axes(_AXES_OPS[op], vals[0], vals[1])
    if op in _VIEW_OPS:
        return _along_views(op, vals[0], vals[1])
    if op == "cast":
        return [t if t.dtype == dtype else t.to(dtype) for t in vals[0]]
    if op == "pow":
        if _is_two(vals[1]):
            return torch._foreach_mul(vals[0], vals[0])  # see _is_two
        return torch._foreach_pow(vals[0], vals[1])
    if op == "where":
        cond, x, y = (v if lst else _per_tensor(v, n)
                      for v, lst in zip(vals, is_list))
        return [(a if c else b) if isinstance(c, bool)
                else torch.where(c, a, b) for c, a, b in zip(cond, x, y)]
    if op == "greater":  # as 0/1 of the dtype (see ``_Math.greater``)
        if isinstance(vals[1], float):
            # x > c  <=>  sign(x - c) = 1 (NaN: torch's sign gives 0)
            diff = vals[0] if vals[1] == 0.0 else torch._foreach_sub(
                vals[0], vals[1])
            mask = torch._foreach_sign(diff)
            torch._foreach_clamp_min_(mask, 0.0)
            return mask
        return [torch.gt(t, o).to(dtype)
                for t, o in zip(vals[0], vals[1] if is_list[1]
                                else _per_tensor(vals[1], n))]
    x, y = vals
    if not is_list[0]:  # a scalar first: s - t, s / t
        if op == "sub":
            y = torch._foreach_neg(y)
            return torch._foreach_add(
                y, x if isinstance(x, (float, list)) else [x] * n)
        if op == "div":
            return [torch.div(s if isinstance(s, torch.Tensor)
                              else t.new_full((), s), t)
                    for s, t in zip(_per_tensor(x, n), y)]
        x, y = y, x  # commutative
    if not is_list[1] and not isinstance(y, (float, list)):
        y = [y] * n  # a 0-d tensor: the per-tensor (broadcasting) route
    return getattr(torch, f"_foreach_{op}")(x, y)


# -------------------------------------------------------------- planning
#
# A program is a list of in-place foreach steps ``buf ← kind(buf, params)``.
# Its operands are positions in the trace's node list, so that one compiled
# program serves every later step whose trace has the same structure:
#   ("n", pos)            the value of node `pos` (a leaf's tensors or the
#                         buffer holding an intermediate result)
#   ("s", pos, i, neg)    the scalar argument i of node `pos` (negated)
#   ("k", value)          a constant

def _tensor(x):
    return isinstance(x, TensorList)


def _is_scalar(x):
    return not isinstance(x, TensorList)


def _absorbable(x):
    """A node computed inside its single consumer's instruction."""
    return (_tensor(x) and x.op != "leaf" and x.refs == 1
            and not x.is_output and not x.absorbed)


def _n(x):
    return ("n", x.pos)


def _s(node, i, negate=False):
    return ("s", node.pos, i, negate)


def _negated(ref):
    if ref[0] == "k":
        return ("k", -ref[1])
    return ref[:3] + (not ref[3],)


class _Instr:
    __slots__ = ("kind", "acc", "params", "absorbed", "reads")

    def __init__(self, kind, acc, params, absorbed=()):
        self.kind = kind
        self.acc = acc
        self.params = params  # refs and plain strings (op names)
        self.absorbed = absorbed
        self.reads = ()


def _product_term(t):
    """``c·y·z`` or ``c·(y/z)`` of single-use nodes, for addcmul/addcdiv.

    Returns ``(kind, y, z, c_ref, absorbed_nodes)`` or None.
    """
    if not _absorbable(t):
        return None
    one = ("k", 1.0)
    if t.op == "pow" and t.args[1] == 2.0:
        return "addcmul", t.args[0], t.args[0], one, (t,)
    if t.op == "div" and _tensor(t.args[0]) and _tensor(t.args[1]):
        return "addcdiv", t.args[0], t.args[1], one, (t,)
    if t.op != "mul":
        return None
    a, b = t.args
    if _tensor(b):
        if _absorbable(a) and a.op == "mul" and _is_scalar(a.args[1]):
            return "addcmul", a.args[0], b, _s(a, 1), (t, a)
        return "addcmul", a, b, one, (t,)
    inner = a  # t = inner · c
    if not _absorbable(inner):
        return None
    y = inner.args[0]
    z = inner.args[1] if len(inner.args) > 1 else None
    if inner.op == "mul" and _tensor(y) and _tensor(z):
        return "addcmul", y, z, _s(t, 1), (t, inner)
    if inner.op == "div" and _tensor(y) and _tensor(z):
        return "addcdiv", y, z, _s(t, 1), (t, inner)
    if inner.op == "pow" and z == 2.0:
        return "addcmul", y, y, _s(t, 1), (t, inner)
    return None


def _lerp_term(acc, t):
    """``(y - acc)·w``: with ``acc +`` in front, a lerp from acc to y."""
    if _absorbable(t) and t.op == "mul" and _is_scalar(t.args[1]):
        d = t.args[0]
        if _absorbable(d) and d.op == "sub" and d.args[1] is acc \
                and _tensor(d.args[0]):
            return d.args[0], _s(t, 1), (t, d)
    return None


def _linear_term(t):
    """``y·c`` with a scalar c (a number, a 0-d tensor: the learning rate of
    a recorded step, a number again when a CPU step is replayed; or one per
    tensor: ASGD's eta): an alpha for ``_foreach_add_`` (``_k_axpy``)."""
    if _absorbable(t) and t.op == "mul" and _is_scalar(t.args[1]):
        return t.args[0], _s(t, 1), (t,)
    return None


def _root_leaf(x):
    while _tensor(x) and x.op != "leaf":
        x = next((a for a in x.args if _tensor(a)), None)
    return x


def _acc_score(x, hint):
    """How good ``x`` is as the operand computed in place (lower is better).

    ``hint`` is the leaf whose storage the node being chosen should end up
    in (its output's old value), when it lies on such a chain.
    """
    if hint is not None and _root_leaf(x) is hint and (
            x is hint or _absorbable(x)):
        return 0  # the chain can run inside the output's own storage
    if _absorbable(x):
        return 1  # a temporary nobody else reads
    return 2  # must be copied first


def _select(node):
    """Chooses the foreach instruction computing ``node``."""
    op, args, hint = node.op, node.args, node.hint
    if node.rows and op not in _AXES_OPS:
        # keepdims-shaped math (``norm + eps``) and views: computed out of
        # place, in its own shape (the workspace's buffers are full-size)
        return _Instr("eval", next(a for a in args if _tensor(a)),
                      tuple(_n(a) for a in args if _tensor(a)))
    if op == "greater":
        if not node.trace.sub_program or not isinstance(args[1], float):
            raise Unsupported("a comparison outside a reduction's input")
        return _Instr("greater", args[0], (_s(node, 1),))
    if op in ("add", "sub") and _tensor(args[0]) and _tensor(args[1]):
        options = []
        pairs = [(args[0], args[1])]
        if op == "add":
            pairs.append((args[1], args[0]))
        for acc, term in pairs:
            if op == "add":
                lerp = _lerp_term(acc, term)
                if lerp:
                    end, weight, absorbed = lerp
                    options.append((0, _Instr("lerp", acc, (_n(end), weight),
                                              absorbed)))
                    continue
            prod = _product_term(term)
            if prod:
                kind, y, z, c, absorbed = prod
                c = c if op == "add" else _negated(c)
                options.append((0, _Instr(kind, acc, (_n(y), _n(z), c),
                                          absorbed)))
                continue
            lin = _linear_term(term)
            if lin:
                y, c, absorbed = lin
                c = c if op == "add" else _negated(c)
                options.append((1, _Instr("axpy", acc, (_n(y), c),
                                          absorbed)))
                continue
            options.append((2, _Instr("binary", acc, (op, _n(term)))))
        # Staying inside the output's storage saves a copy in and a copy
        # out; otherwise the fewest kernels win.
        scored = [(_acc_score(i.acc, hint), rank, i) for rank, i in options]
        in_place = [o for o in scored if o[0] == 0]
        instr = min(in_place or scored, key=lambda o: (o[1], o[0]))[2]
    elif op == "minimum" and _absorbable(args[0]) \
            and args[0].op == "maximum" and _tensor(args[0].args[0]) \
            and not args[0].rows:
        # min(max(x, lo), hi): one clamp (``MATH.zero_where``, a clip)
        low = args[0]
        instr = _Instr("clamp", low.args[0], (
            _n(low.args[1]) if _tensor(low.args[1]) else _s(low, 1),
            _n(args[1]) if _tensor(args[1]) else _s(node, 1)), (low,))
    elif op in ("add", "sub", "mul", "div", "maximum", "minimum"):
        x, y = args
        if not _tensor(x):  # scalar - t, scalar / t
            instr = _Instr("r" + op, y, (_s(node, 0),))
        elif not _tensor(y):
            instr = _Instr("binary", x, (op, _s(node, 1)))
        elif op in ("add", "mul", "maximum", "minimum") \
                and _acc_score(y, hint) < _acc_score(x, hint):
            instr = _Instr("binary", y, (op, _n(x)))
        else:
            instr = _Instr("binary", x, (op, _n(y)))
    elif op == "where":
        _, x, y = args
        instr = _Instr("where", x if _tensor(x) else y, (
            _s(node, 0), _n(x) if _tensor(x) else _s(node, 1),
            _n(y) if _tensor(y) else _s(node, 2)))
    elif op in _AXES_OPS:
        instr = _Instr("axes", args[0], (_AXES_OPS[op], ("k", args[1])))
    elif op == "pow":
        instr = _Instr("pow", args[0], (_s(node, 1),))
    elif op == "cast":
        instr = _Instr("cast", args[0], ())
    else:  # unary
        instr = _Instr("unary", args[0], (op,))
    for absorbed in instr.absorbed:
        absorbed.absorbed = True
    acc = instr.acc
    if acc.op != "leaf" and acc.refs == 1 and not acc.is_output:
        acc.hint = hint
    return instr


def _inputs(node):
    """Nodes read when ``node`` (possibly absorbed) is computed."""
    out = []
    for arg in node.args:
        if _tensor(arg):
            out.extend(_inputs(arg) if arg.absorbed else [arg])
    return out


class _Program:
    """The compiled foreach steps for one trace structure.

    ``steps`` hold ``(pos, kind, acc, params, target, release, dtype)``:
    the node computed, the kernel, the node whose value is the starting
    point, the operands, where the result goes (``"new"``: a workspace
    buffer the starting value is copied into; ``"reuse"``: the acc's own
    workspace buffer; an int: the storage of that output, written in place),
    and the workspace buffers free after this step.
    """

    def __init__(self, nodes, outputs):
        reachable = {}
        stack = [v for _, v in outputs]
        while stack:
            node = stack.pop()
            if node.pos not in reachable:
                reachable[node.pos] = node
                stack.extend(a for a in node.args if _tensor(a))
        order = [reachable[p] for p in sorted(reachable)]
        for node in order:
            for arg in node.args:
                if _tensor(arg):
                    arg.refs += 1
        for _, value in outputs:
            value.is_output = True
        leaves = {}
        for node in order:
            if node.op == "leaf":
                node.dest_out = next(
                    (i for i, (dest, _) in enumerate(outputs)
                     if dest is not None and dest is node.tensors), None)
                if node.dest_out is not None:
                    leaves[node.dest_out] = node
        for out, (_, value) in enumerate(outputs):
            if value.op != "leaf":
                value.hint = leaves.get(out)
        for node in reversed(order):
            if node.op != "leaf" and not node.absorbed:
                node.instr = _select(node)
        instrs = [n for n in order if n.op != "leaf" and not n.absorbed]
        last_read = self._place(instrs, outputs, leaves)
        self._emit(instrs, outputs, last_read)

    @staticmethod
    def _place(instrs, outputs, leaves):
        """Marks the chains computed in their output's own storage, and the
        outputs computed out of place straight into it (``("into", out)``:
        a value of other operands, Adan's ``-g`` for its next step) where
        nothing reads the output's old value from that instruction on:
        one pass instead of a buffer and a copy."""
        end = len(instrs)
        last_read = {}
        leaf_reads = {}
        for index, node in enumerate(instrs):
            instr = node.instr
            reads = [instr.acc] + [
                node.trace.nodes[p[1]] for p in instr.params
                if isinstance(p, tuple) and p[0] == "n"]
            for absorbed in instr.absorbed:
                reads.extend(_inputs(absorbed))
            instr.reads = reads
            for x in reads:
                last_read[x.pos] = index
                if x.op == "leaf":
                    leaf_reads.setdefault(x.pos, []).append(index)
        for _, value in outputs:
            last_read[value.pos] = end
            if value.op == "leaf":
                leaf_reads.setdefault(value.pos, []).append(end)
        index_of = {node.pos: i for i, node in enumerate(instrs)}
        for out, (_, value) in enumerate(outputs):
            if value.op == "leaf":
                continue
            chain = [value]
            while True:
                instr = chain[-1].instr
                if instr.kind in ("cast", "rdiv", "where", "axes", "eval",
                                  "greater"):
                    chain = None
                    break
                acc = instr.acc
                if acc.op == "leaf":
                    break
                if acc.refs != 1 or acc.is_output:
                    chain = None
                    break
                chain.append(acc)
            if chain is None:
                continue
            leaf = chain[-1].instr.acc
            if leaf.dest_out != out:
                continue
            bottom = index_of[chain[-1].pos]
            if all(i <= bottom for i in leaf_reads.get(leaf.pos, ())):
                for node in chain:
                    node.dest_out = out
        for out, (dest, value) in enumerate(outputs):
            if value.op == "leaf" or value.dest_out is not None or \
                    dest is None or value.rows or \
                    value.instr.kind in ("axes", "eval") or \
                    dest[0].dtype != value.dtype:
                continue
            old = leaves.get(out)
            index = index_of[value.pos]
            if old is None or all(i < index
                                  for i in leaf_reads.get(old.pos, ())):
                value.dest_out = ("into", out)
        return last_read

    def _emit(self, instrs, outputs, last_read):
        owned = set()
        steps = []
        for index, node in enumerate(instrs):
            instr = node.instr
            acc = instr.acc
            if instr.kind in ("axes", "eval"):
                target = "rows"  # new keepdims-shaped tensors, no buffer
            elif isinstance(node.dest_out, tuple):
                target = node.dest_out  # out of place, into the output
            elif instr.kind in ("cast", "rdiv", "where", "greater"):
                target = "new"
            elif node.dest_out is not None:
                target = node.dest_out
            elif acc.pos in owned and acc.refs == 1 and not acc.is_output:
                target = "reuse"
                owned.discard(acc.pos)
            else:
                target = "new"
            if target in ("new", "reuse"):
                owned.add(node.pos)
            release = tuple(sorted(
                {x.pos for x in instr.reads
                 if last_read[x.pos] == index and x.pos in owned}))
            owned.difference_update(release)
            steps.append((node.pos, instr.kind, acc.pos, instr.params,
                          target, release, node.dtype))
        self.steps = steps
        # Copies into the outputs not computed in place, in output order:
        # like update_step's assignments (an output that is another slot's
        # old value reads that slot as already written, on both paths).
        writes = []
        for out, (dest, value) in enumerate(outputs):
            if value.op == "leaf":
                if value.tensors is not dest:
                    writes.append((out, "leaf", value.pos))
            elif value.dest_out not in (out, ("into", out)):
                writes.append((out, "node", value.pos))
        self.writes = writes

    def run(self, nodes, outputs, workspace, reset=True):
        """Runs the steps; returns the values by node position. An output
        whose destination is None stays in its buffer (a sub-program's
        value read later); ``reset``: all of ``workspace`` is free (a
        sub-program takes from the buffers its trace holds)."""
        import torch

        if reset:
            workspace.reset()
        bufs = {}

        def resolve(ref):
            if not isinstance(ref, tuple):
                return ref  # an op name
            tag = ref[0]
            if tag == "n":
                node = nodes[ref[1]]
                return node.tensors if node.op == "leaf" else bufs[ref[1]]
            if tag == "s":
                value = nodes[ref[1]].args[ref[2]]
                if isinstance(value, tuple):
                    return [-v for v in value] if ref[3] else list(value)
                if isinstance(value, _PerVar):
                    return (-value if ref[3] else value).values()
                return -value if ref[3] else value
            return ref[1]  # "k"

        for pos, kind, acc, params, target, release, dtype in self.steps:
            start = resolve(("n", acc))
            if target == "rows":
                if kind == "axes":
                    bufs[pos] = _along_axes(params[0], start, params[1][1])
                else:
                    bufs[pos] = _evaluate_node(nodes[pos], resolve)
                for r in release:
                    workspace.give(bufs.pop(r))
                continue
            if target == "new" or isinstance(target, tuple):
                buf = workspace.take(dtype) if target == "new" \
                    else outputs[target[1]][0]
                if kind == "rdiv":
                    torch._foreach_zero_(buf)
                    torch._foreach_add_(buf, resolve(params[0]))
                    torch._foreach_div_(buf, start)
                    kind = None
                elif kind == "cast":
                    torch._foreach_copy_(buf, start)
                    kind = None
                elif kind == "where":
                    _where(buf, [resolve(p) for p in params])
                    kind = None
                elif kind == "greater":
                    _evaluate_into("greater", [start, resolve(params[0])],
                                   [True, False], buf, workspace.large)
                    kind = None
                elif workspace.large and _out_of_place(
                        kind, buf, start, [resolve(p) for p in params]):
                    kind = None
                else:
                    torch._foreach_copy_(buf, start)
            elif target == "reuse":
                buf = bufs.pop(acc)
            else:
                buf = outputs[target][0]
            if kind is not None:
                _KERNELS[kind](buf, [resolve(p) for p in params])
            bufs[pos] = buf
            for r in release:
                workspace.give(bufs.pop(r))
        for out, kind, pos in self.writes:
            dest = outputs[out][0]
            source = nodes[pos].tensors if kind == "leaf" else bufs[pos]
            if dest is not None and source is not dest:
                torch._foreach_copy_(dest, source)
        return bufs


def _evaluate_node(node, resolve):
    """A node's value out of place (``_evaluate``), its operands read from
    the program's values (``resolve``)."""
    vals, is_list = [], []
    for i, a in enumerate(node.args):
        is_list.append(_tensor(a))
        if _tensor(a):
            vals.append(resolve(("n", a.pos)))
        elif isinstance(a, (tuple, _PerVar)) and not (
                node.op in _SHAPE_OPS and i == 1):
            vals.append(resolve(("s", node.pos, i, False)))
        else:
            vals.append(a)
    return list(_evaluate(node.op, vals, is_list, node.n, node.dtype))


class Workspace:
    """Scratch tensors for one group, kept between steps.

    ``large``: CPU tensors big enough on average that writing a new value
    with one ``out=`` call per tensor beats a foreach copy followed by the
    in-place kernel (one pass over memory instead of two). Never on an
    accelerator, where a call per tensor is a kernel launch per tensor.
    """

    #: mean elements per tensor from which ``large`` holds. Measured on the
    #: CPU, one thread, 10 tensors, whole optimizer steps timed in interleaved
    #: rounds (one Python call per tensor against two foreach passes): the
    #: per-tensor calls win from ~10^4 elements (NovoGrad and Rprop -12%,
    #: Lamb -3% at 10^4), are level or lose below (Lamb +21% at 4000,
    #: Adafactor +18% at 1000)
    LARGE = 8192

    def __init__(self, template):
        self.template = template
        self.buffers = []
        self._free = []
        self.large = template[0].device.type == "cpu" and sum(
            t.numel() for t in template) >= self.LARGE * len(template)

    def reset(self):
        self._free = list(self.buffers)

    def take(self, dtype):
        for i, buf in enumerate(self._free):
            if buf[0].dtype == dtype:
                return self._free.pop(i)
        import torch

        buf = [torch.empty_like(t, dtype=dtype) for t in self.template]
        self.buffers.append(buf)
        return buf

    def give(self, buf):
        self._free.append(buf)

    def nbytes(self):
        return sum(t.numel() * t.element_size()
                   for buf in self.buffers for t in buf)


def _fill(dest, value):
    """Writes a scalar slot: one value per variable, or one for all."""
    import torch

    if isinstance(value, torch.Tensor) and value.ndim == 1:
        values = value.as_subclass(torch.Tensor).unbind(0)
        torch._foreach_copy_(dest, list(values))
        return
    if isinstance(value, torch.Tensor):  # on the device: no host read
        for t in dest:
            t.copy_(value)
        return
    value = float(value)
    for t in dest:
        t.fill_(value)


# A scalar operand reaches a kernel as a float, a list of floats, or (with
# ``device_scalars``) a 0-d tensor or a list of 0-d tensors, one per tensor.
# torch's foreach kernels take a 0-d tensor only in some overloads
# (``_foreach_mul_.Tensor`` and co.); the others get a list of 0-d tensors
# (``.List`` overloads broadcast them) or the product is formed first.

def _number(c):
    return isinstance(c, float) or (
        isinstance(c, list) and (not c or isinstance(c[0], float)))


def _as_list(c, n):
    return c if isinstance(c, list) else [c] * n


def _cpu_scalars(buf, c):
    """On the CPU, a tensor scalar as the 1-D tensor the ``.Tensor``
    overloads of addcmul/addcdiv take (they read it on the host, which on
    the CPU is no synchronisation); None on other devices."""
    import torch

    if buf[0].device.type != "cpu":
        return None
    if isinstance(c, list):
        if c[0].device.type != "cpu":
            return None
        return torch.stack(c)
    if c.device.type != "cpu":
        return None
    return c.reshape(1).repeat(len(buf))


def _scaled(y, c):
    """``y·c`` as a new list (c a tensor scalar)."""
    import torch

    return torch._foreach_mul(y, c)


def _k_lerp(buf, params):
    import torch

    w = params[1]
    if _number(w):
        torch._foreach_lerp_(buf, params[0], w)
    else:
        torch._foreach_lerp_(buf, params[0], _as_list(w, len(buf)))


def _k_addcmul(buf, params):
    import torch

    y, z, c = params
    if _number(c):
        torch._foreach_addcmul_(buf, y, z, c)
    elif (packed := _cpu_scalars(buf, c)) is not None:
        torch._foreach_addcmul_(buf, y, z, packed)
    else:
        torch._foreach_addcmul_(buf, _scaled(y, c), z)


def _k_addcdiv(buf, params):
    import torch

    y, z, c = params
    if _number(c):
        torch._foreach_addcdiv_(buf, y, z, c)
    elif (packed := _cpu_scalars(buf, c)) is not None:
        torch._foreach_addcdiv_(buf, y, z, packed)
    else:  # buf + c·(y/z), rounded as addcdiv does
        q = torch._foreach_div(y, z)
        torch._foreach_mul_(q, c)
        torch._foreach_add_(buf, q)


def _per_tensor_calls(buf):
    """One kernel call per tensor beats a foreach kernel plus a pass more:
    CPU tensors of at least ``Workspace.LARGE`` elements (on an accelerator
    a call per tensor is a launch per tensor)."""
    return buf[0].device.type == "cpu" and buf[0].numel() >= Workspace.LARGE


def _k_axpy(buf, params):
    import torch

    y, c = params
    if isinstance(c, float):
        torch._foreach_add_(buf, y, alpha=c)
    elif isinstance(c, list) and _number(c) and _per_tensor_calls(buf):
        for b, t, ci in zip(buf, y, c):  # one pass per tensor
            b.add_(t, alpha=ci)
    else:  # one alpha per tensor, or tensor scalars: the product first
        torch._foreach_add_(buf, _scaled(y, c))


def _k_binary(buf, params):
    import torch

    op, other = params
    if op in ("mul", "div") and isinstance(other, float) and other == 1.0:
        return  # x * 1.0 and x / 1.0 are x, bit for bit (Adan's first-step
        # factor on every later step)
    if not _number(other) and not isinstance(other, list) and \
            not (op in ("add", "mul", "div")):
        other = [other] * len(buf)  # sub/maximum/minimum: no .Tensor form
    getattr(torch, f"_foreach_{op}_")(buf, other)


def _k_rsub(buf, params):
    import torch

    torch._foreach_neg_(buf)
    torch._foreach_add_(buf, params[0])


def _is_two(e):
    """An exponent of 2: the square is computed as ``x * x``, the correctly
    rounded value that ``ops.square`` gives on the per-variable path.
    torch's CPU ``pow`` is far slower for it: with a Python float exponent
    and ``out=`` ~9 ns an element against ~0.1 for a product (1e5 float32
    values: 890 us against 12 us, torch 2.13), ``_foreach_pow`` ~5x a
    product."""
    return isinstance(e, (int, float)) and not isinstance(e, bool) \
        and e == 2


def _k_pow(buf, params):
    import torch

    e = params[0]
    if _is_two(e):
        torch._foreach_mul_(buf, buf)
        return
    torch._foreach_pow_(buf, e if _number(e) else _as_list(e, len(buf)))


def _where(buf, params):
    """``buf[i] ← where(cond, x[i], y[i])`` for a scalar condition kept on
    the device (one value for all, or one per tensor)."""
    import torch

    n = len(buf)
    cond, x, y = (_as_list(p, n) for p in params)
    for b, c, xi, yi in zip(buf, cond, x, y):
        if isinstance(c, bool):  # read on the host (no device scalars)
            chosen = xi if c else yi
            if isinstance(chosen, float):
                b.fill_(chosen)
            else:
                b.copy_(chosen)
        elif isinstance(xi, float) or isinstance(yi, float):
            b.copy_(torch.where(c, xi, yi))
        else:
            torch.where(c, xi, yi, out=b)


def _k_clamp(buf, params):
    """``buf ← min(max(buf, lo), hi)``: torch's clamp (NaN propagated, as
    the two steps), one pass per tensor for large tensors, else the two
    foreach kernels (no Python loop)."""
    import torch

    low, high = params
    if not _per_tensor_calls(buf) and isinstance(low, float) \
            and isinstance(high, float):
        torch._foreach_clamp_min_(buf, low)
        torch._foreach_clamp_max_(buf, high)
        return
    n = len(buf)
    for b, lo, hi in zip(buf, _as_list(low, n), _as_list(high, n)):
        torch.clamp(b, lo, hi, out=b)


def _k_unary(buf, params):
    import torch

    getattr(torch, f"_foreach_{params[0]}_")(buf)


def _out_of_place(kind, buf, start, params):
    """``buf ← kind(start, params)`` by per-tensor ``out=`` calls.

    Returns False (nothing done) for the kinds without such a form here.
    """
    import torch

    def each(value):
        return value if isinstance(value, list) else [value] * len(buf)

    if kind in ("axpy", "addcmul", "addcdiv", "pow") and \
            not _number(params[-1]):
        return False  # a tensor scalar: the foreach forms handle it

    if kind == "unary":
        fn = getattr(torch, params[0])
        for b, s in zip(buf, start):
            fn(s, out=b)
    elif kind == "binary":
        op, other = params
        fn = getattr(torch, op)
        if op in ("maximum", "minimum") and not (
                isinstance(other, list) and torch.is_tensor(other[0])):
            if not _number(other):
                return False  # a tensor scalar: the foreach forms take it
            # torch.maximum takes no number: clamp (NaN propagated alike,
            # as ``_evaluate_into``)
            fn = torch.clamp_min if op == "maximum" else torch.clamp_max
        for b, s, o in zip(buf, start, each(other)):
            fn(s, o, out=b)
    elif kind == "axpy":
        for b, s, y, c in zip(buf, start, params[0], each(params[1])):
            torch.add(s, y, alpha=c, out=b)
    elif kind == "lerp":
        for b, s, e, w in zip(buf, start, params[0], each(params[1])):
            torch.lerp(s, e, w, out=b)
    elif kind in ("addcmul", "addcdiv"):
        fn = getattr(torch, kind)
        for b, s, y, z, c in zip(buf, start, params[0], params[1],
                                 each(params[2])):
            fn(s, y, z, value=c, out=b)
    elif kind == "clamp":
        for b, s, lo, hi in zip(buf, start, each(params[0]), each(params[1])):
            torch.clamp(s, lo, hi, out=b)
    elif kind == "pow":
        for b, s, e in zip(buf, start, each(params[0])):
            if _is_two(e):
                torch.mul(s, s, out=b)
            else:
                torch.pow(s, e, out=b)
    else:
        return False
    return True


_KERNELS = {
    "lerp": _k_lerp,
    "addcmul": _k_addcmul,
    "addcdiv": _k_addcdiv,
    "axpy": _k_axpy,
    "binary": _k_binary,
    "rsub": _k_rsub,
    "pow": _k_pow,
    "unary": _k_unary,
    "clamp": _k_clamp,
}


