"""The torch backend's multi-tensor fast path, kept apart from the algorithms.

On the torch backend Keras runs a subclass's ``update_step`` once per
variable: one Python round trip and a handful of small kernels for every
tensor of the model. This package runs the *same* ``_prepare``/``_update``
code of a :class:`~keras_optzoo.optimizers.ZooOptimizer` once for a whole
group of variables instead, without a second copy of any algorithm:

* ``compiler.py``: ``TensorList`` (a lazy list of tensors recording an
  expression graph), ``MATH`` (the elementwise functions ``_update`` may call
  through ``self._math``) and the program that turns a graph into in-place
  ``torch._foreach_*`` calls.
* ``runner.py``: grouping of variables, tracing of ``_update`` and the entry
  point :func:`apply` that ``ZooOptimizer`` calls on the torch backend.
* ``replay.py``: the first trace of a group records its scalar math (torch
  calls under a ``TorchFunctionMode``); later steps replay those calls and
  run the compiled program, without running ``_update`` again. A recording
  that reads a value on the host, or a tensor from outside the step, is not
  used (the update is traced every step instead), except a ``where``
  condition on a CPU step: it is read on the host (one branch computed)
  and kept as a guard, and a replay whose condition differs traces and
  records the step again (a first-step ``where``: once).
* ``lean.py``: :func:`lean_step`, a step for a built optimizer without
  Keras's ``apply()`` bookkeeping where none of it is in use.
* ``fused.py``: torch's fused kernels (Adam/AdamW, SGD, Adagrad), chosen by
  the ``fused_kernel`` name an optimizer class declares.

Nothing here imports an optimizer (``tests/test_import_graph.py`` fails on an
import cycle).

Host synchronisation: ``State.device_scalars`` keeps every scalar (learning
rate, bias corrections, step counts, ``where`` conditions) in tensors on the
device and passes them to the foreach kernels' tensor overloads and the
fused kernels' ``tensor_lr`` overloads, like torch.optim's ``capturable``:
no ``.item()`` per step. It is on by default off the CPU and wherever a
trace is recorded for replay; ``tests/test_host_sync.py`` checks it.
Inherent exception: torch's fused SGD takes ``is_first_step`` as a Python
bool; without a host read it runs only without dampening (our first step
then equals the kernel's non-first step on zero buffers), else the foreach
program runs.

How a new optimizer gets the fast path
--------------------------------------
Write ``_update`` with arithmetic operators on the per-variable values and
``self._math`` for elementwise functions (sqrt, rsqrt, abs, sign, maximum,
minimum, where, exp, log, square, cast, negative, greater, zero_where) and
per-tensor reductions
(``norm``, ``sum``, ``mean``, ``max``: a 0-d tensor per variable on the
per-variable path, one value per tensor, as a 1-D per-variable tensor, on
the fast path, computed by ``torch._foreach_norm`` where it applies; the
scalar math on them is ordinary ``keras.ops`` code) and reductions along
axes (``sum``/``norm``/``mean`` with ``axis=`` one tuple of axes per tensor and
``keepdims=True``: a TensorList of keepdims-shaped values that later
arithmetic broadcasts per tensor, computed by one torch call per tensor only
where the program uses it; AdamP's per-channel rows, see
``optimizers/_layerwise.py``); keep scalar math (bias
corrections, schedule values) in ``keras.ops`` on 0-d tensors, with no
Python decision on a tensor's value (``if step > 1``: use
``self._math.where``), so that the step needs no host read and its
recording can be replayed. That is all:
the spec database's ``multi_tensor=True`` (the default) then makes
``tests/test_multi_tensor.py`` check the fast path against the per-variable
path for it. If torch has a fused kernel computing exactly the rule, add it
to ``fused.KERNELS`` and declare ``fused_kernel = "<name>"`` on the class.

A Python decision per variable (AdamP projects matrices only, MARS gives
vectors AdamW) is an update rule: ``ZooOptimizer._rule_for`` decides it in
``build``, ``_update`` reads ``self._rule(index)``, and the runner groups
variables by rule (and by the slots the rule declares), so one ``_update``
call takes one branch for its whole group.

The values computed before a reduction (Lamb's moments and update before
its norm) are computed at once, when the reduction is called. On the
steps that replay a recording they are computed by a foreach program
like the rest of the step (``_SubProgram``, planned once the whole trace
is known): the same instructions (lerp, addcmul, addcdiv, axpy), a value
computed in its operand's buffer where nothing else reads the operand,
and a slot's new value computed in the slot's own storage where nothing
after the reduction reads the slot's old value (the step then copies
nothing into it; not in a recording with guards, whose replay may still
trace the step again from the old values).

A function of whole matrices (Muon's Newton-Schulz) is
``self._math.per_matrix(fn, x, views)``: the sub-graph below ``x`` is
computed at once, like a reduction's, the tensors (viewed through their
layouts) are stacked by shape and ``fn`` runs once per shape (batched
matrix products); the result is a TensorList for later foreach math.
The views are layouts (``keras_optzoo.layout``), or ``Layout.matrix``
for the torch tensor flattened to ``(out, rest)`` (NorMuon and AdaMuon
read a convolution kernel so). Math that must see a value in the
matrix's own shape (NorMuon's per-row second moment, a mean along the
torch matrix's rows, held in a ``(rows, 1)`` slot) goes inside ``fn``:
``per_matrix`` takes several values per variable, ``x`` a tuple (a
matrix and that slot) and ``views`` a tuple with one entry per value
(None: as stored), and ``fn`` returns one result per value (the slot's
new value among them), each stacked and batched the same way; the
per-variable path calls the same ``fn`` on the single matrices, so the
algorithm keeps one copy. A slot of another shape than its variable is
keepdims-shaped on the fast path (math on it alone runs in its own
shape). A per-tensor Python constant (a shape-dependent ratio) may be
a tuple of floats, one per tensor.

Slots smaller than their variable (Adafactor's factored row and column
statistics, saved in the shape torch keeps them in) work as they are: the
runner hands such a slot to ``_update`` as a TensorList whose ``shapes``
are the slots' (``TensorList.shapes``; None for parameter-shaped values),
and every node derived from small values only, a reduction along axes
(``sum``/``norm``/``mean`` with ``axis=``: one tuple per tensor, or one
int or tuple of ints for every tensor, ``-1`` being each one's last axis)
or a per-tensor view is small too (``TensorList.rows``): computed out of
place in its own shape, never in the full-size workspace buffers, until
broadcasting two of them gives the parameters' shape again (a row times a
column), which the foreach kernels then compute into those buffers. A new
slot value must have the slot's shape (checked while tracing: a copy would
broadcast silently). The views are ``self._math.reshape(x, shapes)`` and
``self._math.transpose(x, axes)`` (``keras.ops`` on tensors; on a
TensorList one shape or permutation per tensor, None leaving a tensor as
it is, and only of small values: a view of a full-size value would alias a
workspace buffer). They let ``_update`` read a slot kept in the torch
layout as a keepdims-shaped value in the Keras layout and back
(``Layout.keepdims_from_torch``/``keepdims_to_torch``;
``optimizers/_factored.py`` for Adafactor), so the saved slot shapes stay
those of the reference while the full-size math runs in the variable's own
layout, with no transpose of a full-size tensor.

When ``_update`` needs something else a TensorList cannot express (a
view of a full-size value, a tensor's shape): set the class attribute
``supports_multi_tensor = False`` (or the instance attribute, when only some
configurations need it) and ``multi_tensor=False`` in the spec. The
per-variable ``update_step`` then runs on torch, and
``optimizer.update_path`` says "per-variable". Do not rely on the trace
failing: a failing trace warns once and falls back, which is meant for
unforeseen cases, not for a known limitation.
"""

from keras_optzoo.fastpath.compiler import MATH
from keras_optzoo.fastpath.compiler import TensorList
from keras_optzoo.fastpath.compiler import Unsupported
from keras_optzoo.fastpath.compiler import Workspace
from keras_optzoo.fastpath.compiler import per_variable_class
from keras_optzoo.fastpath.fused import KERNELS
from keras_optzoo.fastpath.lean import lean_step
from keras_optzoo.fastpath.runner import State
from keras_optzoo.fastpath.runner import apply

__all__ = ["MATH", "TensorList", "Unsupported", "Workspace",
           "per_variable_class", "KERNELS", "State", "apply", "lean_step"]
