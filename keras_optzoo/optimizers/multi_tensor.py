"""Multi-tensor execution of `ZooOptimizer` updates on the torch backend.

On the torch backend Keras runs a subclass's ``update_step`` once per
variable: one Python round trip and a handful of small kernels for every
tensor of the model. This module runs the *same* ``_prepare``/``_update``
code once for a whole group of variables instead, without a second copy of
any algorithm:

* ``_update`` receives :class:`TensorList` values (one tensor per variable of
  the group) for ``param``, ``grad`` and the slots. A ``TensorList`` overloads
  the arithmetic operators, and the few elementwise functions the optimizers
  call go through :data:`MATH` (``ZooOptimizer._math``), which hands plain
  tensors to ``keras.ops`` and ``TensorList`` values to this module. Scalar
  math (bias corrections, schedules) stays ordinary ``keras.ops`` code on 0-d
  tensors.
* A ``TensorList`` is lazy: the operators record an expression graph. When
  ``_update`` returns, :class:`_Program` compiles the graph into in-place
  ``torch._foreach_*`` calls: chains such as ``m + (1-β)(g - m)`` become one
  ``_foreach_lerp_``, ``v·β + c·g·g`` a ``_foreach_mul_`` and an
  ``_foreach_addcmul_``, ``θ - c·(m/d)`` an ``_foreach_addcdiv_``; a new slot
  or parameter value is computed directly in the variable's storage when its
  old value is not read afterwards, and the remaining temporaries live in a
  workspace kept between steps (allocating fresh memory every step costs more
  than the arithmetic on CPU). The compiled program is cached by the graph's
  structure; each step only re-runs ``_update`` (its scalar math changes)
  and the program.
* Variables are grouped by dtype, device and weight-decay mask (float16 and
  bfloat16 variables keep the per-variable path, see ``_Layout``). A
  per-variable scalar slot (NAdam's ``mu_product``) enters ``_update`` as one
  0-d value when all the group's values agree (the usual case), else as a 1-D
  tensor of one value per variable, so any mix is handled exactly.
* Where torch has a fused kernel computing exactly our rule (Adam/AdamW, SGD,
  Adagrad, in float32/float64) it is used instead; ``use_multi_tensor =
  "foreach"`` keeps to the generic path above.

The result equals the per-variable path up to float rounding order (tested in
``tests/test_multi_tensor.py``). Any ``_update`` that uses something a
``TensorList`` does not support fails while being traced, before anything is
written; the optimizer then warns once and keeps to the per-variable path.
"""

import warnings

import keras
import numpy as np
from keras import ops


class Unsupported(TypeError):
    """An operation a TensorList cannot express (the fast path is skipped)."""


class _Trace:
    """The nodes created while one group's update is traced, in order, and
    their structure (the key under which the compiled program is cached)."""

    def __init__(self):
        self.nodes = []
        self.signature = []


class TensorList:
    """A lazily computed list of tensors, one per variable of a group.

    Arithmetic with another ``TensorList``, a Python number, a 0-d tensor (the
    same value for every variable) or a 1-D tensor with one value per variable
    records a node; nothing is computed until the group's program runs.
    """

    __array_ufunc__ = None  # numpy scalars defer to our reflected operators
    __slots__ = ("op", "args", "dtype", "n", "tensors", "trace", "pos",
                 "refs", "is_output", "absorbed", "instr", "dest_out", "hint")

    def __init__(self, op, args, dtype, n, trace, tensors=None, role=None):
        self.op = op
        self.args = args
        self.dtype = dtype
        self.n = n
        self.tensors = tensors
        self.trace = trace
        self.pos = len(trace.nodes)
        trace.nodes.append(self)
        if op == "leaf":
            trace.signature.append(("leaf", role))
        else:
            trace.signature.append((op,) + tuple(
                a.pos if isinstance(a, TensorList)
                else ("t" if isinstance(a, tuple)
                      else (a if op == "pow" else "f"))
                for a in args) + ((dtype,) if op == "cast" else ()))
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

    def abs(self, x):
        return self._unary("abs", x)

    def sign(self, x):
        return self._unary("sign", x)

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
        return getattr(ops, name)(x, y)

    def maximum(self, x, y):
        return self._binary("maximum", x, y)

    def minimum(self, x, y):
        return self._binary("minimum", x, y)

    def where(self, condition, x, y):
        """A scalar condition selects a branch; per-element ones fall back."""
        if isinstance(x, TensorList) or isinstance(y, TensorList):
            if isinstance(condition, TensorList) or (
                hasattr(condition, "ndim") and condition.ndim != 0
            ):
                raise Unsupported("where() with a per-element condition")
            return x if bool(ops.convert_to_numpy(condition)) else y
        return ops.where(condition, x, y)

    def cast(self, x, dtype):
        if not isinstance(x, TensorList):
            return ops.cast(x, dtype)
        import torch

        target = getattr(torch, keras.backend.standardize_dtype(dtype))
        if target == x.dtype:
            return x
        return x._new("cast", x, dtype=target)


MATH = _Math()


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
    return isinstance(x, (float, tuple))


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
    """``y·c`` with one scalar c: an alpha for ``_foreach_add_``."""
    if _absorbable(t) and t.op == "mul" and isinstance(t.args[1], float):
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
                     if dest is node.tensors), None)
                if node.dest_out is not None:
                    leaves[node.dest_out] = node
        for out, (_, value) in enumerate(outputs):
            if value.op != "leaf":
                value.hint = leaves.get(out)
        for node in reversed(order):
            if node.op != "leaf" and not node.absorbed:
                node.instr = _select(node)
        instrs = [n for n in order if n.op != "leaf" and not n.absorbed]
        last_read = self._place(instrs, outputs)
        self._emit(instrs, outputs, last_read)

    @staticmethod
    def _place(instrs, outputs):
        """Marks the chains computed in their output's own storage."""
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
                if instr.kind in ("cast", "rdiv"):
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
        return last_read

    def _emit(self, instrs, outputs, last_read):
        owned = set()
        steps = []
        for index, node in enumerate(instrs):
            instr = node.instr
            acc = instr.acc
            if instr.kind in ("cast", "rdiv"):
                target = "new"
            elif node.dest_out is not None:
                target = node.dest_out
            elif acc.pos in owned and acc.refs == 1 and not acc.is_output:
                target = "reuse"
                owned.discard(acc.pos)
            else:
                target = "new"
            if not isinstance(target, int):
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
            elif value.dest_out != out:
                writes.append((out, "node", value.pos))
        self.writes = writes

    def run(self, nodes, outputs, workspace):
        import torch

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
                return -value if ref[3] else value
            return ref[1]  # "k"

        for pos, kind, acc, params, target, release, dtype in self.steps:
            start = resolve(("n", acc))
            if target == "new":
                buf = workspace.take(dtype)
                if kind == "rdiv":
                    torch._foreach_zero_(buf)
                    torch._foreach_add_(buf, resolve(params[0]))
                    torch._foreach_div_(buf, start)
                    kind = None
                elif kind == "cast":
                    torch._foreach_copy_(buf, start)
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
            source = nodes[pos].tensors if kind == "leaf" else bufs[pos]
            torch._foreach_copy_(outputs[out][0], source)


class Workspace:
    """Scratch tensors for one group, kept between steps.

    ``large``: the tensors are big enough on average that writing a new
    value with one ``out=`` call per tensor beats a foreach copy followed by
    the in-place kernel (one pass over memory instead of two).
    """

    #: mean elements per tensor from which ``large`` holds
    LARGE = 32768

    def __init__(self, template):
        self.template = template
        self.buffers = []
        self._free = []
        self.large = sum(t.numel() for t in template) \
            >= self.LARGE * len(template)

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
    value = value.item() if isinstance(value, torch.Tensor) else float(value)
    for t in dest:
        t.fill_(value)


def _k_lerp(buf, params):
    import torch

    torch._foreach_lerp_(buf, params[0], params[1])


def _k_addcmul(buf, params):
    import torch

    torch._foreach_addcmul_(buf, params[0], params[1], params[2])


def _k_addcdiv(buf, params):
    import torch

    torch._foreach_addcdiv_(buf, params[0], params[1], params[2])


def _k_axpy(buf, params):
    import torch

    torch._foreach_add_(buf, params[0], alpha=params[1])


def _k_binary(buf, params):
    import torch

    getattr(torch, f"_foreach_{params[0]}_")(buf, params[1])


def _k_rsub(buf, params):
    import torch

    torch._foreach_neg_(buf)
    torch._foreach_add_(buf, params[0])


def _k_pow(buf, params):
    import torch

    torch._foreach_pow_(buf, params[0])


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

    if kind == "unary":
        fn = getattr(torch, params[0])
        for b, s in zip(buf, start):
            fn(s, out=b)
    elif kind == "binary":
        op, other = params
        if op in ("maximum", "minimum") and not (
                isinstance(other, list) and torch.is_tensor(other[0])):
            return False  # torch.maximum takes no Python scalar
        fn = getattr(torch, op)
        for b, s, o in zip(buf, start, each(other)):
            fn(s, o, out=b)
    elif kind == "axpy":
        for b, s, y in zip(buf, start, params[0]):
            torch.add(s, y, alpha=params[1], out=b)
    elif kind == "lerp":
        for b, s, e, w in zip(buf, start, params[0], each(params[1])):
            torch.lerp(s, e, w, out=b)
    elif kind in ("addcmul", "addcdiv"):
        fn = getattr(torch, kind)
        for b, s, y, z, c in zip(buf, start, params[0], params[1],
                                 each(params[2])):
            fn(s, y, z, value=c, out=b)
    elif kind == "pow":
        for b, s, e in zip(buf, start, each(params[0])):
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
}


# ----------------------------------------------------------------- state
class State:
    """Per-optimizer bookkeeping of the multi-tensor path.

    ``steps`` counts the updates it applied and ``kinds`` says how the last
    one ran ("fused", "foreach"); ``disabled`` holds the reason after a
    trace failed. Caches: ``workspaces`` (each group's scratch tensors),
    ``layouts`` (the grouping of each variable list), ``programs`` (compiled
    programs by graph structure).
    """

    def __init__(self):
        self.steps = 0
        self.kinds = frozenset()
        self.disabled = None
        self.workspaces = {}
        self.layouts = {}
        self.programs = {}

    def workspace_bytes(self):
        return sum(ws.nbytes() for ws in self.workspaces.values())


# ----------------------------------------------------------------- groups
class _Group:
    """Variables sharing dtype, device and weight decay, with their slots.

    Reading ``variable.value`` costs several microseconds in Keras, so the
    tensors are looked up once per variable list and kept (a torch Keras
    variable keeps its tensor for life: assignments copy into it).
    """

    __slots__ = ("positions", "indices", "params", "slots", "dtype", "decay",
                 "grads", "step")

    def __init__(self, dtype, decay):
        self.positions = []
        self.indices = []
        self.params = []
        self.slots = None
        self.dtype = dtype
        self.decay = decay
        self.grads = None
        self.step = None

    def gather(self, grads):
        """The group's gradients, as tensors of the variables' dtype."""
        import torch

        out = [grads[p] for p in self.positions]
        dtype = self.dtype
        for i, grad in enumerate(out):
            if not isinstance(grad, torch.Tensor):
                grad = ops.convert_to_tensor(grad)
            if grad.dtype != dtype:
                grad = grad.to(dtype)
            out[i] = grad
        self.grads = out
        return self


class _Layout:
    """How one list of variables splits into groups (cached per list).

    ``rest`` holds the positions left to the per-variable ``update_step``:
    ``overwrite_with_gradient`` variables (Keras normally writes those
    itself) and float16/bfloat16 ones. In half precision torch's foreach
    kernels do not round like its per-tensor ops (a Python-float factor is
    rounded to half first), and one fused kernel rounds once where the
    per-variable path rounds after every operation; the results would drift
    apart by an ulp per step.
    """

    def __init__(self, opt, variables):
        import torch

        self.variables = list(variables)  # keeps the ids in the key alive
        self.scalar_slots = {spec.name for spec in opt._slot_specs()
                             if spec.scalar}
        groups = {}
        self.rest = []
        for position, variable in enumerate(variables):
            index = opt._get_variable_index(variable)
            value = variable.value
            if opt._overwrite_variable_with_gradient(variable) or any(
                    slots[index] is None for slots in opt._slots.values()) \
                    or value.dtype not in (torch.float32, torch.float64):
                self.rest.append(position)
                continue
            decay = opt._decay_mask[index]
            key = (value.dtype, value.device, decay)
            group = groups.get(key)
            if group is None:
                group = groups[key] = _Group(value.dtype, decay)
            group.positions.append(position)
            group.indices.append(index)
            group.params.append(value)
        for group in groups.values():
            group.slots = {
                name: [slots[i].value for i in group.indices]
                for name, slots in opt._slots.items()
            }
        self.groups = list(groups.values())


def _layout(opt, variables):
    layouts = opt._multi_tensor.layouts
    key = tuple(map(id, variables))
    layout = layouts.get(key)
    if layout is None:
        if len(layouts) >= 8:  # variable lists that keep changing
            layouts.clear()
        layout = layouts[key] = _Layout(opt, variables)
    return layout


# ------------------------------------------------------------------ trace
class _Traced:
    """One group's traced update, ready to run."""

    __slots__ = ("program", "nodes", "outputs", "scalar_outputs",
                 "workspace")

    def run(self):
        self.program.run(self.nodes, self.outputs, self.workspace)
        for dest, value in self.scalar_outputs:
            _fill(dest, value)


def _trace(opt, group, learning_rate, scalar_names):
    """Runs ``_prepare`` and ``_update`` on TensorLists, nothing written."""
    import torch

    trace = _Trace()
    dtype, n = group.dtype, len(group.params)
    param = TensorList("leaf", (), dtype, n, trace, group.params, "param")
    grad = TensorList("leaf", (), dtype, n, trace, group.grads, "grad")
    state = {}
    for name, tensors in group.slots.items():
        if name in scalar_names:
            values = torch.stack(tensors)
            if bool((values == values[0]).all()):
                # the usual case: one value for all (cheaper scalar math)
                state[name] = values[0]
            else:
                state[name] = values.as_subclass(per_variable_class())
        else:
            state[name] = TensorList("leaf", (), dtype, n, trace, tensors,
                                     name)
    param, grad, lr = opt._prepare(grad, param, learning_rate,
                                   group.indices[0])
    new_param, new_state = opt._update(param, grad, state, lr,
                                       tuple(group.indices))
    traced = _Traced()
    traced.outputs = [(group.params, new_param)]
    traced.scalar_outputs = []
    for name, value in new_state.items():
        dest = group.slots[name]
        if name in scalar_names:
            if isinstance(value, keras.Variable):
                value = value.value
            if getattr(value, "ndim", 0) != 0 and not (
                    isinstance(value, per_variable_class())
                    and tuple(value.shape) == (n,)):
                raise Unsupported(f"scalar slot {name!r} got a non-scalar")
            traced.scalar_outputs.append((dest, value))
        else:
            traced.outputs.append((dest, value))
    out_signature = []
    for dest, value in traced.outputs:
        if not isinstance(value, TensorList):  # update_step would not
            raise Unsupported("a new value that is not per-variable")
        out_signature.append(value.pos)
    cache = opt._multi_tensor
    key = (dtype, tuple(trace.signature), tuple(out_signature))
    program = cache.programs.get(key)
    if program is None:
        if len(cache.programs) >= 64:
            cache.programs.clear()
        program = cache.programs[key] = _Program(trace.nodes,
                                                 traced.outputs)
    workspace = cache.workspaces.get(tuple(group.indices))
    if workspace is None:
        if len(cache.workspaces) >= 16:  # variable subsets that keep changing
            cache.workspaces.clear()
        workspace = cache.workspaces[tuple(group.indices)] = Workspace(
            group.params)
    traced.program = program
    traced.nodes = trace.nodes
    traced.workspace = workspace
    return traced


# ------------------------------------------------------------------ fused
def _step_value(opt):
    iterations = opt.iterations
    if isinstance(iterations, keras.Variable):
        iterations = iterations.value
    return int(iterations.item())


def _step_tensors(opt, group):
    """The kernels' per-parameter step counts: one tensor holding the
    1-based step, listed once per parameter (they only read it)."""
    import torch

    if group.step is None:
        group.step = torch.zeros((), device=group.params[0].device)
    group.step.fill_(_step_value(opt) + 1)
    return [group.step] * len(group.params)


def _fused_adam(opt, group, lr):
    import torch

    fn = torch._fused_adamw_ if opt.decoupled_weight_decay \
        else torch._fused_adam_
    fn(group.params, group.grads, group.slots["exp_avg"],
       group.slots["exp_avg_sq"], group.slots.get("max_exp_avg_sq", []),
       _step_tensors(opt, group), lr=lr, beta1=opt.beta_1, beta2=opt.beta_2,
       weight_decay=opt.weight_decay if group.decay else 0.0,
       eps=opt.epsilon, amsgrad=opt.amsgrad, maximize=opt.maximize)


def _fused_sgd(opt, group, lr):
    import torch

    torch._fused_sgd_(
        group.params, group.grads, group.slots.get("momentum_buffer", []),
        weight_decay=opt.weight_decay if group.decay else 0.0,
        momentum=opt.momentum, lr=lr, dampening=opt.dampening,
        nesterov=opt.nesterov, maximize=opt.maximize,
        is_first_step=_step_value(opt) == 0,
    )


def _fused_adagrad(opt, group, lr):
    import torch

    torch._fused_adagrad_(
        group.params, group.grads, group.slots["sum"],
        _step_tensors(opt, group), lr=lr,
        lr_decay=opt.lr_decay,
        weight_decay=opt.weight_decay if group.decay else 0.0,
        eps=opt.epsilon, maximize=opt.maximize,
    )


_FUSED_BY_CLASS = {}


def _fused_kernel(opt):
    """torch's fused kernel for ``opt`` where it computes exactly our rule:
    the class's own ``_prepare``/``_update`` (not a subclass's override) and
    float hyperparameters (a schedule's value would need a host read)."""
    cls = type(opt)
    entry = _FUSED_BY_CLASS.get(cls)
    if entry is None:
        from keras_optzoo.optimizers.adagrad import Adagrad
        from keras_optzoo.optimizers.adam import Adam
        from keras_optzoo.optimizers.base import ZooOptimizer
        from keras_optzoo.optimizers.sgd import SGD

        entry = (None, None)
        if cls._prepare is ZooOptimizer._prepare:
            if issubclass(cls, Adam) and cls._update is Adam._update:
                entry = (_fused_adam, "beta_1")
            elif issubclass(cls, SGD) and cls._update is SGD._update:
                entry = (_fused_sgd, "momentum")
            elif issubclass(cls, Adagrad) and cls._update is Adagrad._update:
                entry = (_fused_adagrad, None)
        _FUSED_BY_CLASS[cls] = entry
    kernel, hyper = entry
    if hyper is not None and not isinstance(getattr(opt, hyper), float):
        return None
    return kernel


def _fusable(group):
    return all(g.is_contiguous() for g in group.grads)


# ------------------------------------------------------------------ entry
def _keras_state_allows_in_place():
    """False inside a StatelessScope or an autocast scope, where a variable's
    ``.value`` is not its storage (writes there would be lost)."""
    scopes = _keras_scopes()
    return scopes is not None and not scopes.in_stateless_scope() \
        and scopes.get_autocast_scope() is None


def _keras_scopes():
    global _SCOPES
    if _SCOPES is False:
        try:
            from keras.src import backend as keras_backend

            keras_backend.in_stateless_scope  # noqa: B018 - both must exist
            keras_backend.get_autocast_scope  # noqa: B018
            _SCOPES = keras_backend
        except (ImportError, AttributeError):  # Keras moved them: play safe
            _SCOPES = None
    return _SCOPES


_SCOPES = False


def apply(opt, grads, variables, learning_rate):
    """Updates ``variables`` with the multi-tensor path.

    Returns False, having changed nothing, where the path does not apply:
    another backend, ``use_multi_tensor=False``, a Keras scope in which
    variables are not written in place, torch.compile tracing, or an
    ``_update`` using something a TensorList does not support.
    """
    mode = opt.use_multi_tensor
    if mode not in (None, True, False, "foreach"):
        raise ValueError(
            "`use_multi_tensor` must be None, True, False or 'foreach'. "
            f"Received: use_multi_tensor={mode!r}")
    if keras.backend.backend() != "torch":
        return False
    state = opt._multi_tensor
    if mode is False or state.disabled:
        return False
    import torch

    if torch.compiler.is_compiling() or not _keras_state_allows_in_place():
        return False
    layout = _layout(opt, variables)
    if not layout.groups:  # nothing in float32/float64 with slots
        return False
    fused = None if mode == "foreach" else _fused_kernel(opt)
    try:
        if torch.is_grad_enabled():  # (fit calls apply under no_grad)
            with torch.no_grad():
                kinds = _run(opt, layout, grads, learning_rate, fused)
        else:
            kinds = _run(opt, layout, grads, learning_rate, fused)
    finally:
        for group in layout.groups:
            group.grads = None  # do not keep the gradients alive
    if kinds is None:
        return False
    for position in layout.rest:
        opt.update_step(grads[position], variables[position], learning_rate)
    state.steps += 1
    state.kinds = kinds
    return True


def _run(opt, layout, grads, learning_rate, fused):
    """Traces every group (nothing written yet), then runs them all.

    Returns the kinds of kernels used, or None when a trace failed.
    """
    state = opt._multi_tensor
    lr = None
    plans = []
    for group in layout.groups:
        group.gather(grads)
        if fused is not None and _fusable(group):
            if lr is None:
                lr = float(learning_rate.item()) \
                    if hasattr(learning_rate, "item") else float(learning_rate)
            plans.append((group, None))
            continue
        try:
            plans.append((group, _trace(opt, group, learning_rate,
                                        layout.scalar_slots)))
        except Exception as error:  # noqa: BLE001 - anything untraceable
            state.disabled = f"{type(error).__name__}: {error}"
            warnings.warn(
                f"{type(opt).__name__}: the multi-tensor path cannot run "
                f"this update ({state.disabled}); using the per-variable "
                "update_step from now on.", stacklevel=5)
            return None
    kinds = set()
    for group, plan in plans:
        if plan is None:
            fused(opt, group, lr)
            kinds.add("fused")
        else:
            plan.run()
            kinds.add("foreach")
    return frozenset(kinds)
