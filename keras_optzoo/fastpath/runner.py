"""Running ``ZooOptimizer`` updates on groups of tensors (torch backend).

Variables are grouped by dtype, device and weight-decay mask (float16 and
bfloat16 variables keep the per-variable path, see ``_Layout``). Each group's
``_prepare``/``_update`` is traced on TensorLists (``compiler.py``) and the
compiled program runs; or, where the optimizer declares a fused kernel that
computes its rule (``fused.py``), torch's fused kernel runs instead. A
per-variable scalar slot (NAdam's ``mu_product``) enters ``_update`` as one
0-d value when all the group's values agree (the usual case), else as a 1-D
tensor of one value per variable, so any mix is handled exactly.

The result equals the per-variable path up to float rounding order (tested in
``tests/test_multi_tensor.py``). Any ``_update`` that uses something a
``TensorList`` does not support fails while being traced, before anything is
written; the optimizer then warns once and keeps to the per-variable path.
"""

import warnings

import keras
from keras import ops

from keras_optzoo.fastpath.compiler import TensorList
from keras_optzoo.fastpath.compiler import Unsupported
from keras_optzoo.fastpath.compiler import Workspace
from keras_optzoo.fastpath.compiler import _fill
from keras_optzoo.fastpath.compiler import _Program
from keras_optzoo.fastpath.compiler import _Trace
from keras_optzoo.fastpath.compiler import per_variable_class
from keras_optzoo.fastpath.fused import _fusable
from keras_optzoo.fastpath.fused import fused_allowed
from keras_optzoo.fastpath.replay import Recorder
from keras_optzoo.fastpath.replay import Replay
from keras_optzoo.fastpath.fused import kernel_for


# ----------------------------------------------------------------- state
class State:
    """Per-optimizer bookkeeping of the multi-tensor path.

    ``steps`` counts the updates it applied and ``kinds`` says how the last
    one ran ("fused", "foreach"); ``disabled`` holds the reason after a
    trace failed. Caches: ``workspaces`` (each group's scratch tensors),
    ``layouts`` (the grouping of each variable list), ``programs`` (compiled
    programs by graph structure). ``replay``: see ``replay.py`` (True by
    default; ``replayed`` counts the steps that used a recording).

    ``device_scalars``: keep every scalar of the step (learning rate, bias
    corrections, step counts, ``where`` conditions) in tensors on the
    parameters' device and hand them to torch's kernels as tensors, as
    torch.optim does with ``capturable=True``: no host read per step, so no
    device-to-host synchronisation on an accelerator. ``None`` (the default)
    means "on any device but the CPU": on the CPU reading a 0-d tensor is
    not a synchronisation, and Python-number operands let the foreach
    kernels fuse more (``addcdiv`` with a scalar value). ``True`` forces it
    everywhere (``tests/test_host_sync.py`` runs the accelerator code path
    on the CPU this way).
    """

    def __init__(self):
        self.device_scalars = None
        #: replay the recorded scalar math instead of re-tracing ``_update``
        #: every step (``replay.py``); traces then keep scalars as tensors
        self.replay = True
        self.steps = 0
        self.replayed = 0
        self.not_replayed = None  # why the last recording is not used
        #: on the CPU a recording keeps each ``where`` condition it read on
        #: the host as a guard (``replay.py``): a replay whose condition
        #: differs traces again (the first step's ``where`` of ADOPT or
        #: Lars: once). A condition that keeps changing stops the recording:
        #: every step is traced with Python numbers from then on.
        self.declined = False
        #: replays that found a guard's condition changed (``replay.py``)
        self.guard_misses = 0
        self.kinds = frozenset()
        self.disabled = None
        self.workspaces = {}
        self.layouts = {}
        self.programs = {}
        #: step statistics copied into kept tensors (``_pin_step_statistics``)
        self.pinned_stats = None
        self.stats_buffers = {}

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
                 "grads", "step", "replay", "slot_shapes")

    def __init__(self, dtype, decay):
        self.positions = []
        self.indices = []
        self.params = []
        self.slots = None
        self.dtype = dtype
        self.decay = decay
        self.grads = None
        self.step = None
        self.replay = None
        #: per slot: None where its tensors have the parameters' shapes,
        #: else their shapes (``TensorList.shapes``: a factored statistic)
        self.slot_shapes = {}

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
            if opt._overwrite_variable_with_gradient(variable) \
                    or value.dtype not in (torch.float32, torch.float64):
                self.rest.append(position)
                continue
            decay = opt._decay_mask[index]
            # one group per param group too: its hyperparameters and lr
            # apply to the whole group (keras_optzoo/param_groups.py); and
            # per update rule (``_rule_for``) with the slots it declares:
            # ``_update`` then takes one branch for the whole group
            param_group = opt._group_of[index] \
                if getattr(opt, "_group_of", None) else 0
            slot_names = tuple(name for name, slots in opt._slots.items()
                               if slots[index] is not None)
            key = (value.dtype, value.device, decay, param_group,
                   opt._rules[index], slot_names)
            group = groups.get(key)
            if group is None:
                group = groups[key] = _Group(value.dtype, decay)
            group.positions.append(position)
            group.indices.append(index)
            group.params.append(value)
        for key, group in groups.items():
            slot_names = key[-1]
            group.slots = {
                name: [opt._slots[name][i].value for i in group.indices]
                for name in slot_names
            }
            full = [tuple(t.shape) for t in group.params]
            for name, tensors in group.slots.items():
                shapes = tuple(tuple(t.shape) for t in tensors)
                group.slot_shapes[name] = None if list(shapes) == full \
                    else shapes
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


def _replayable(opt):
    return opt._multi_tensor.replay and not opt._multi_tensor.declined \
        and not opt._has_gradient_transforms() and (
            not opt._has_step_statistics()
            or opt._multi_tensor.pinned_stats is not None)


def _pin_step_statistics(opt):
    """Step statistics a recording can read (``replay_step_statistics``).

    ``opt._stats`` is computed anew every step, outside ``_update``: a
    recording would keep reading the first step's tensors. For an optimizer
    declaring ``replay_step_statistics = True`` (its statistics are 0-d or
    small tensors that only ``_update`` reads), each step's values are
    copied into tensors kept for life, which ``opt._stats`` then holds and a
    recording reads live, like a variable's storage. Sets
    ``State.pinned_stats`` (the kept tensors by id), or None where this does
    not apply (a Python number among the statistics, say).
    """
    import torch

    state = opt._multi_tensor
    state.pinned_stats = None
    if not opt.replay_step_statistics or not opt._has_step_statistics():
        return
    kept = state.stats_buffers
    pinned = {}

    def pin(path, value):
        if isinstance(value, dict):
            return {k: pin(path + (k,), v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(pin(path + (i,), v)
                               for i, v in enumerate(value))
        if isinstance(value, keras.Variable):
            value = value.value
        if not isinstance(value, torch.Tensor):
            raise Unsupported("a step statistic that is not a tensor")
        buf = kept.get(path)
        if buf is None or buf.shape != value.shape or \
                buf.dtype != value.dtype or buf.device != value.device:
            buf = kept[path] = torch.empty_like(value)
        buf.copy_(value)
        pinned[id(buf)] = buf
        return buf

    try:
        stats = pin((), opt._stats)
    except Unsupported:
        return
    opt._stats = stats
    state.pinned_stats = pinned


def _no_host_reads(opt, group):
    """Whether the step must not read a value on the host: on an
    accelerator (by default) or when ``device_scalars`` is forced on."""
    mode = opt._multi_tensor.device_scalars
    if mode is None:
        return group.params[0].device.type != "cpu"
    return bool(mode)


def _device_scalars(opt, group):
    """Whether a trace keeps its scalars as tensors: where host reads are
    ruled out, and where the trace is recorded for replay."""
    if opt._multi_tensor.device_scalars is False:
        return False
    return _no_host_reads(opt, group) or _replayable(opt)


def _trace(opt, group, learning_rate, scalar_names, record=False,
           device_scalars=None):
    """Runs ``_prepare`` and ``_update`` on TensorLists, nothing written.

    Returns ``(traced, replay)``; ``record``: record the scalar math for
    replay (else, or where tracing keeps Python-number scalars, replay is
    None). ``device_scalars``: None decides as :func:`_device_scalars`.
    """
    import contextlib

    if device_scalars is None:
        device_scalars = _device_scalars(opt, group)
    recorder = None
    if record and device_scalars:
        persistent = {}
        for v in opt.variables:
            persistent[id(v.value)] = v.value
        for t in group.params:
            persistent[id(t)] = t
        persistent.update(opt._multi_tensor.pinned_stats or {})
        recorder = Recorder(persistent, learning_rate)
    with recorder.mode if recorder else contextlib.nullcontext():
        traced, trace = _trace_in(opt, group, learning_rate, scalar_names,
                                  device_scalars, recorder)
    return traced, (Replay(opt, recorder, traced, trace, group)
                    if recorder else None)


def _per_variable(values):
    return values.as_subclass(per_variable_class())


_per_variable.plain_in_replay = True


def _trace_in(opt, group, learning_rate, scalar_names, device_scalars,
              recorder=None):
    import torch

    trace = _Trace(device_scalars, group.params)
    trace.recorder = recorder
    trace.host_selects = recorder is not None and \
        not _no_host_reads(opt, group)
    cache = opt._multi_tensor
    trace.scratch = _workspace(cache, ("reductions",)
                               + tuple(group.indices), group)
    trace.scratch.reset()
    dtype, n = group.dtype, len(group.params)
    param = TensorList("leaf", (), dtype, n, trace, group.params, "param")
    grad = TensorList("leaf", (), dtype, n, trace, group.grads, "grad")
    state = {}
    for name, tensors in group.slots.items():
        if name in scalar_names:
            values = torch.stack(tensors)
            if device_scalars:  # no host read: one value per variable
                state[name] = _per_variable(values)
                if recorder is not None:  # (as_subclass is not seen)
                    recorder.observe(_per_variable, (values,), {},
                                     state[name])
            elif bool((values == values[0]).all()):
                # the usual case: one value for all (cheaper scalar math)
                state[name] = values[0]
            else:
                state[name] = values.as_subclass(per_variable_class())
        else:
            state[name] = TensorList("leaf", (), dtype, n, trace, tensors,
                                     name, group.slot_shapes.get(name))
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
            if isinstance(value, TensorList) and \
                    value.shapes != group.slot_shapes.get(name):
                # (copied into the slot, it would be broadcast silently)
                raise Unsupported(f"the new value of slot {name!r} is not "
                                  "of the slot's shape")
            traced.outputs.append((dest, value))
    if isinstance(new_param, TensorList) and new_param.shapes is not None:
        raise Unsupported("the new parameter value is not of its shape")
    out_signature = []
    for dest, value in traced.outputs:
        if not isinstance(value, TensorList):  # update_step would not
            raise Unsupported("a new value that is not per-variable")
        out_signature.append(value.pos)
    trace.finalize(traced.outputs)
    key = (dtype, tuple(trace.signature), tuple(out_signature))
    program = cache.programs.get(key)
    if program is None:
        if len(cache.programs) >= 64:
            cache.programs.clear()
        program = cache.programs[key] = _Program(trace.nodes,
                                                 traced.outputs)
    workspace = _workspace(cache, tuple(group.indices), group)
    traced.program = program
    traced.nodes = trace.nodes
    traced.workspace = workspace
    return traced, trace


def _workspace(cache, key, group):
    """The group's Workspace under ``key`` (its indices: the program's;
    ("reductions",) + indices: the values reductions compute at once)."""
    workspace = cache.workspaces.get(key)
    if workspace is None:
        if len(cache.workspaces) >= 32:  # variable subsets that keep changing
            cache.workspaces.clear()
        workspace = cache.workspaces[key] = Workspace(group.params)
    return workspace


def _kernel_lr(learning_rate, group, device_scalars):
    """The fused kernels' lr: a tensor on the device (their ``tensor_lr``
    overloads) or, on the CPU path, a Python float."""
    if isinstance(learning_rate, keras.Variable):
        learning_rate = learning_rate.value
    if not hasattr(learning_rate, "item"):
        return float(learning_rate)
    if not device_scalars:
        return float(learning_rate.item())
    import torch

    lr = learning_rate.as_subclass(torch.Tensor)
    device = group.params[0].device
    if lr.device != device and device.type != "cpu":
        lr = lr.to(device, non_blocking=True)
    return lr


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
    fused = None if mode == "foreach" else kernel_for(opt)
    _pin_step_statistics(opt)
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
    from keras_optzoo import param_groups

    state = opt._multi_tensor
    lrs = {}
    plans = []
    for group in layout.groups:
        group.gather(grads)
        first = group.indices[0]  # a group is within one param group
        group_lr = param_groups.group_learning_rate(opt, learning_rate, first)
        no_host_reads = _no_host_reads(opt, group)
        if fused is not None and _fusable(group) and \
                fused_allowed(opt, no_host_reads):
            key = (id(group_lr), no_host_reads)
            if key not in lrs:
                lrs[key] = _kernel_lr(group_lr, group, key[1])
            plans.append((group, lrs[key]))
            continue
        cached = group.replay
        if cached is not None and group_lr is cached.lr_kind(group_lr) \
                and cached.valid(opt, group_lr):
            ready = cached.run(group_lr, group,
                               host_floats=not no_host_reads)
            if ready is not None:
                plans.append((group, ready))
                state.replayed += 1
                continue
            # a guard's condition changed (the first step's ``where``):
            # traced and recorded again; a condition that keeps changing
            # (more than one step in four) is not recorded any more
            state.guard_misses += 1
            if state.guard_misses > 8 and \
                    4 * state.guard_misses > state.replayed:
                state.declined = True
        try:
            with param_groups.scope(opt, first):
                traced, replay = _trace(opt, group, group_lr,
                                        layout.scalar_slots,
                                        record=_replayable(opt))
            group.replay = replay if replay is not None and replay.ok \
                else None
            state.not_replayed = None if replay is None else replay.problem
            if group.replay is not None:
                # A replay computes the values before a reduction with the
                # planned program (``_SubProgram``), whose instructions may
                # round otherwise than the trace's one operation per node,
                # and takes CPU scalars as Python numbers (an axpy's alpha:
                # one fused multiply-add, where the trace's tensor scalar
                # multiplies first): the recorded step is replayed too, so
                # that no step's result depends on whether it is the first
                # after build or load (or after a guard's condition
                # changed). The trace itself writes nothing.
                ready = group.replay.run(group_lr, group,
                                         host_floats=not no_host_reads)
                if ready is not None:
                    traced = ready
            if group.replay is None and replay is not None and \
                    not no_host_reads:
                # The recording traced with tensor scalars only to be
                # replayed; without a replay every later step traces with
                # Python-number scalars, which round differently. Trace this
                # step that way too, so that a step's result never depends
                # on whether it is the first after build or load (resume
                # stays bit-exact).
                with param_groups.scope(opt, first):
                    traced, _ = _trace(opt, group, group_lr,
                                       layout.scalar_slots,
                                       device_scalars=False)
            plans.append((group, traced))
        except Exception as error:  # noqa: BLE001 - anything untraceable
            state.disabled = f"{type(error).__name__}: {error}"
            warnings.warn(
                f"{type(opt).__name__}: the multi-tensor path cannot run "
                f"this update ({state.disabled}); using the per-variable "
                "update_step from now on.", stacklevel=5)
            return None
    kinds = set()
    for group, plan in plans:
        if not isinstance(plan, _Traced):  # the group's lr, for the kernel
            with param_groups.scope(opt, group.indices[0]):
                fused(opt, group, plan)
            kinds.add("fused")
        else:
            plan.run()
            kinds.add("foreach")
    return frozenset(kinds)
