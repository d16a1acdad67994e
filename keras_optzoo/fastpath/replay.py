"""Replaying a traced update's scalar math without running ``_update``.

Tracing ``_prepare``/``_update`` on TensorLists every step costs far more
than the kernels for small models: the scalar math (bias corrections,
schedules, ``where`` conditions) goes through ``keras.ops`` on 0-d tensors,
about 1 ms per step for NAdam or RAdam on a CPU. The expression graph is
the same every step; only those scalars change. So the first trace (made
with ``device_scalars``: scalars stay tensors) runs under a
``TorchFunctionMode`` that records every torch call producing a tensor.
Later steps re-run only the recorded calls (the torch functions themselves,
without Keras's dispatch), put the new scalars into the graph's nodes and
run the compiled program.

A recording is used only when it is a closed description of the step:

* every tensor it reads comes from a recorded call, is the learning rate
  handed in, or is the storage of one of the optimizer's or the model's
  variables (read live at replay, as ``_update`` would read it);
* nothing was read on the host while tracing (``item``, ``bool`` ...): a
  Python decision on a value would be frozen;
* the optimizer has no gradient transforms or step statistics (values
  computed outside ``_update`` each step);
* the optimizer's plain Python attributes (hyperparameters) are those it
  had when recorded (checked every step; a change re-traces).

Otherwise the update is traced every step, as before. This module imports
no optimizer.
"""

import operator

_HOST_READS = frozenset({"item", "tolist", "__bool__", "__float__",
                         "__int__", "__index__", "numpy", "__array__",
                         "__complex__"})


def _identity(x):
    return x


def _fingerprint(opt):
    return tuple((k, v) for k, v in vars(opt).items()
                 if v is None or isinstance(v, (bool, int, float, str)))


def _has_tensorlist(values):
    from keras_optzoo.fastpath.compiler import TensorList

    for v in values:
        if isinstance(v, TensorList):
            return True
        if isinstance(v, (list, tuple)) and _has_tensorlist(v):
            return True
    return False


class Recorder:
    """Records the torch calls made while one group is traced."""

    def __init__(self, persistent, lr):
        import torch

        self.ops = []  # (func, args template, kwargs template)
        self.outs = []  # the value each recorded call returned
        self.made = {}  # id(tensor) -> (op index, element or None)
        self.keep = []  # the recorded tensors, so their ids stay unique
        self.persistent = persistent  # id -> tensor (variables' storage)
        self.lr = lr
        self.problem = None
        self.guards = []  # (ref, flags): host-read conditions (``guard``)
        recorder = self

        class Mode(torch.overrides.TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                out = func(*args, **kwargs)
                recorder.observe(func, args, kwargs, out)
                return out

        self.mode = Mode()

    def observe(self, func, args, kwargs, out):
        import torch

        name = getattr(func, "__name__", "")
        if name in _HOST_READS:
            self.problem = self.problem or f"host read ({name})"
            return
        if _has_tensorlist(args) or _has_tensorlist(kwargs.values()):
            return  # a TensorList operation: part of the graph
        if isinstance(out, torch.Tensor):
            elements = None
        elif isinstance(out, (tuple, list)) and out and all(
                isinstance(o, torch.Tensor) for o in out):
            elements = len(out)
        else:
            return  # .shape, .dtype, ...: static
        if elements is None and args and out is args[0]:
            return  # ``x.to(x.device)`` and the like return their input
        index = len(self.ops)
        if func is torch.Tensor.__rsub__:
            # its Python wrapper calls exactly this
            func = torch._C._VariableFunctions.rsub
        if getattr(func, "plain_in_replay", False):
            # the per-variable marker class only matters while tracing
            # (replayed math on plain tensors skips its Python dispatch)
            func = _identity
        self.ops.append((func, [self.template(a) for a in args],
                         {k: self.template(v) for k, v in kwargs.items()}))
        self.outs.append(out)
        if elements is None:
            self.made[id(out)] = (index, None)
            self.keep.append(out)
        else:
            for j, o in enumerate(out):
                self.made[id(o)] = (index, j)
                self.keep.append(o)

    def template(self, value):
        import torch

        if isinstance(value, torch.Tensor):
            return self.ref(value)
        if isinstance(value, (list, tuple)):
            return ("seq", type(value), [self.template(v) for v in value])
        return ("k", value)

    def guard(self, tensor, flags):
        """A condition read on the host while tracing (``MATH.where`` on a
        CPU step): the recording describes the steps where it has the same
        value (``flags``: one bool per element), checked at every replay."""
        self.guards.append((self.ref(tensor), flags))

    def ref(self, tensor):
        if tensor is self.lr:
            return ("lr",)
        made = self.made.get(id(tensor))
        if made is not None:
            return ("r",) + made
        if id(tensor) in self.persistent:
            return ("k", tensor)  # a variable's storage, read live
        self.problem = self.problem or "a tensor from outside the trace"
        return ("k", tensor)


def _constant_calls(ops, outs):
    """The recorded calls that only make a constant (``torch.as_tensor`` of
    a Python number or list, ``torch.full`` of a fixed shape and value):
    their recorded value is the value every replay would make again.
    None where a recorded call writes in place (a constant could then
    change between steps)."""
    import torch

    makers = {torch.as_tensor, torch.tensor, torch.full,
              torch.scalar_tensor, torch.zeros, torch.ones}

    def fixed(template):
        if template[0] == "k":
            return not isinstance(template[1], torch.Tensor)
        if template[0] == "seq":
            return all(fixed(t) for t in template[2])
        return False

    for func, _, _ in ops:
        name = getattr(func, "__name__", "")
        if name.endswith("_") and not name.endswith("__"):
            return set()
    return {i for i, (func, args, kwargs) in enumerate(ops)
            if func in makers and isinstance(outs[i], torch.Tensor)
            and all(fixed(a) for a in args)
            and all(fixed(v) for v in kwargs.values())}


def _straight_line(ops, outs=None):
    """The recorded calls as one generated Python function of the learning
    rate returning every recorded value: ``v0 = f0(lr, c0)``, ``v1 =
    f1(v0, c1)`` ... Replaying them through a generic interpreter (a loop
    resolving each argument's template) cost about as much Python time as
    the torch calls themselves; the generated function makes exactly the
    same calls, in the same order, on the same values, except that a call
    making a constant (``_constant_calls``: ``torch.as_tensor`` of a
    per-tensor constant, ~10-40 us each on the CPU) is not made again: its
    recorded value is reused."""
    env = {}
    constants = _constant_calls(ops, outs) if outs is not None else set()

    def constant(value):
        name = f"c{len(env)}"
        env[name] = value
        return name

    def expr(template):
        tag = template[0]
        if tag == "lr":
            return "lr"
        if tag == "r":
            return (f"v{template[1]}" if template[2] is None
                    else f"v{template[1]}[{template[2]}]")
        if tag == "k":
            return constant(template[1])
        items = ", ".join(expr(t) for t in template[2])  # "seq"
        return f"{constant(template[1])}([{items}])"

    lines = ["def _replay(lr):"]
    for i, (func, args, kwargs) in enumerate(ops):
        if i in constants:
            lines.append(f"    v{i} = {constant(outs[i])}")
            continue
        call = [expr(a) for a in args]
        call += [f"{k}={expr(v)}" for k, v in kwargs.items()]
        lines.append(f"    v{i} = {constant(func)}({', '.join(call)})")
    lines.append(f"    return [{', '.join(f'v{i}' for i in range(len(ops)))}]")
    exec(compile("\n".join(lines), "<fastpath replay>", "exec"), env)  # noqa: S102
    return env["_replay"]


class Replay:
    """A group's recorded scalar math, its traced graph and where the
    recorded values go in it."""

    def __init__(self, opt, recorder, traced, trace, group):
        import torch

        from keras_optzoo.fastpath.compiler import TensorList
        from keras_optzoo.fastpath.compiler import _PerVar

        self.ok = recorder.problem is None
        self.problem = recorder.problem
        self.ops = recorder.ops
        self._program = _straight_line(self.ops, recorder.outs)
        self.traced = traced
        self.scratch = trace.scratch  # reset before the reductions rerun
        self.subgraphs = tuple(trace.subgraphs)
        self.fingerprint = _fingerprint(opt)
        # the attributes compared at every replay, read with one C call
        self._attrs = operator.attrgetter(
            *(k for k, _ in self.fingerprint)) if self.fingerprint else None
        self._values = self._attrs(opt) if self._attrs else None
        self._keys = tuple(vars(opt))
        self._types = tuple(map(type, vars(opt).values()))
        self.guards = recorder.guards
        self.grad_leaves = [node for node in trace.nodes
                            if node.op == "leaf"
                            and node.tensors is group.grads]
        # node args holding a tensor scalar: (node, position, ref, per-var)
        self.slots = []
        for node in trace.nodes:
            for i, a in enumerate(node.args):
                if isinstance(a, TensorList):
                    continue
                if isinstance(a, _PerVar):
                    self.slots.append((node, i, recorder.ref(a.tensor), True))
                elif isinstance(a, torch.Tensor):
                    self.slots.append((node, i, recorder.ref(a), False))
        self.scalar_outputs = [
            (k, recorder.ref(value))
            for k, (_, value) in enumerate(traced.scalar_outputs)
            if isinstance(value, torch.Tensor)]
        if len(self.scalar_outputs) != len(traced.scalar_outputs):
            self.ok, self.problem = False, "a scalar slot not a tensor"
        if recorder.problem is not None:
            self.ok, self.problem = False, recorder.problem

    @staticmethod
    def lr_kind(learning_rate):
        """The learning rate when a recording can take it (a tensor), else
        None (a Python number is a constant of the trace: re-trace)."""
        import torch

        return learning_rate if isinstance(learning_rate, torch.Tensor) \
            else None

    def valid(self, opt, learning_rate):
        """The recording still describes the step: the optimizer's plain
        attributes are those it had when recorded. Equivalent to comparing
        :func:`_fingerprint` (same attribute names, same types, so the same
        plain attributes, with the same values), in C-speed calls rather
        than a Python loop over every attribute."""
        if not self.ok:
            return False
        attrs = vars(opt)
        keys, types = tuple(attrs), tuple(map(type, attrs.values()))
        if keys != self._keys or types != self._types:
            # an attribute that is not a plain value came or went (the lean
            # step's cached verdict, say): compare the slow way, and
            # remember the new layout when the plain values still agree
            if _fingerprint(opt) != self.fingerprint:
                return False
            self._keys, self._types = keys, types
            return True
        if self._attrs is None:
            return True
        # (``is``: one attribute comes back bare, and a NaN equals itself
        # only by identity, as inside the fingerprint's tuple)
        values = self._attrs(opt)
        return values is self._values or values == self._values

    def run(self, learning_rate, group, host_floats=False):
        """Replays the scalar math; returns the traced group, ready to run,
        or None where a guard's condition differs from the recorded one.

        ``host_floats`` (a CPU step where host reads are allowed): the
        kernels get the scalars as Python numbers, for which torch's
        foreach kernels have cheaper forms (reading a CPU tensor is no
        synchronisation). ``where`` conditions stay tensors.
        """
        from keras_optzoo.fastpath.compiler import _PerVar
        from keras_optzoo.fastpath.compiler import condition_flags

        values = []

        def get(t):
            tag = t[0]
            if tag == "r":
                v = values[t[1]]
                return v if t[2] is None else v[t[2]]
            if tag == "k":
                return t[1]
            if tag == "lr":
                return learning_rate
            return t[1]([get(x) for x in t[2]])  # "seq"

        # (first: a recorded per-tensor reduction reads the gradients)
        for leaf in self.grad_leaves:
            leaf.tensors = group.grads
        if self.scratch is not None:
            self.scratch.reset()
        for subgraph in self.subgraphs:
            subgraph.host_floats = host_floats
        values.extend(self._program(learning_rate))
        for ref, flags in self.guards:
            if condition_flags(get(ref)) != flags:
                return None  # a condition changed: trace the step again
        for node, i, ref, per_var in self.slots:
            value = get(ref)
            args = list(node.args)
            if host_floats and node.op != "where":
                if per_var:
                    floats = value.tolist()
                    value = floats[0] if all(v == floats[0] for v in floats) \
                        else tuple(floats)
                else:
                    value = value.item()
                args[i] = float(value) if not isinstance(value, tuple) \
                    else value
            else:
                args[i] = _PerVar(value) if per_var else value
            node.args = tuple(args)
        traced = self.traced
        for k, ref in self.scalar_outputs:
            dest, _ = traced.scalar_outputs[k]
            traced.scalar_outputs[k] = (dest, get(ref))
        return traced
