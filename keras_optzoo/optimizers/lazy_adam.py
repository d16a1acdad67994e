"""LazyAdam: Adam that touches only the rows that received gradient, as
torch.optim.SparseAdam."""

from keras import ops

from keras_optzoo.fastpath import MATH
from keras_optzoo.fastpath import TensorList
from keras_optzoo.optimizers import _layerwise
from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers.adam import check_betas
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import ZooOptimizer
from keras_optzoo.optimizers.base import _is_indexed_slices
from keras_optzoo.optimizers.base import cast_scalar
from keras_optzoo.optimizers.base import one_minus_power
from keras_optzoo.registry import register_optimizer


@register_optimizer("lazyadam", "Adam updating only the rows that received "
                    "gradient, for embeddings (torch.optim.SparseAdam)")
class LazyAdam(ZooOptimizer):
    r"""LazyAdam, as `torch.optim.SparseAdam` (torch 2.13).

    Adam restricted to the *present* rows $R_t$ of the gradient: for a row
    $i \in R_t$

    $$m_{t,i} = m_{t-1,i} + (1-\beta_1)(g_{t,i} - m_{t-1,i}),\qquad
      v_{t,i} = v_{t-1,i} + (1-\beta_2)(g_{t,i}^2 - v_{t-1,i})$$
    $$\theta_{t,i} = \theta_{t-1,i} - \gamma\,
      \frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}\,
      \frac{m_{t,i}}{\sqrt{v_{t,i}} + \epsilon}$$

    and rows $i \notin R_t$ keep $\theta$, $m$ and $v$ unchanged (no
    momentum step, no decay of the moments). $t$ is the global step (the
    number of updates applied, this one included), as torch counts it for a
    parameter that receives a gradient at every step; ε is added to the
    *uncorrected* $\sqrt{v_t}$ (torch's SparseAdam does so, unlike its Adam).

    Which rows are present:

    * a TensorFlow `tf.IndexedSlices` gradient (an `Embedding` on the TF
      backend): the rows named by its indices, as torch's sparse gradient
      of `nn.Embedding(sparse=True)`. Duplicated indices are summed first
      (torch coalesces), and a row that is looked up but whose summed
      gradient is exactly zero still counts as present: its moments decay
      and it moves by $m/(\sqrt v+\epsilon)$, as in torch.
    * a dense gradient (every backend; JAX and torch differentiate an
      embedding lookup to a dense tensor): for a variable of rank >= 2 the
      rows (slices along the first axis of the torch tensor the variable
      maps to, `keras_optzoo.layout`: an Embedding's token rows, a Dense
      kernel's output units) whose gradient is not all zero;
      for a 1-D or 0-d variable each element whose gradient is nonzero
      (torch's `grad.to_sparse(sparse_dim=1)` view of a vector). A NaN or
      inf gradient counts as nonzero. So on JAX/torch, and for dense
      gradients on TF, a looked-up row with an exactly zero gradient is
      treated as absent; this is the only case where the dense and the
      IndexedSlices paths can differ.

    Differs from `keras.optimizers.Adam`: Keras's Adam updates every row at
    every step (rows outside the batch keep moving through momentum); this
    one leaves them untouched. Keras's ε placement is the same ("ε-hat":
    added to the uncorrected $\sqrt{v_t}$).

    Differs from TF Addons' `tfa.optimizers.LazyAdam` (its last release):
    TFA also corrects the bias with the global step (`iterations + 1`) and
    adds ε to the uncorrected $\sqrt{v_t}$ (its sparse update is
    `lr * sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)`),
    so on IndexedSlices gradients the rule is the same (it writes the moment
    update as `beta * m + (1 - beta) * g`, equal up to rounding). TFA is
    lazy only for IndexedSlices: on a dense gradient it runs the plain Keras
    Adam step on every row, whereas this class also leaves the all-zero rows
    of a dense gradient untouched. TFA's default epsilon is `1e-7`
    (Keras's); torch's and ours is `1e-8`.

    Args:
        {{learning_rate}}
        beta_1: Float in [0, 1), or a schedule of the step.
            Defaults to `0.9`.
        beta_2: Float in [0, 1). Defaults to `0.999`.
        epsilon: Float > 0 (torch requires it positive: a present row with
            zero gradient and zero second moment would divide 0 by 0).
            Defaults to `1e-8`.
        {{maximize}}
        {{base}}

    torch's SparseAdam has no weight decay and neither has this class:
    `weight_decay` other than 0 raises. A number `learning_rate` must be
    > 0, as torch's SparseAdam requires.

    On the torch backend dense gradients take the multi-tensor path (the
    row masks are sums along each tensor's row axes); an IndexedSlices
    gradient exists only on TensorFlow, where every step is per-variable.

    References:
        - Kingma and Ba, 2015, "Adam: A Method for Stochastic Optimization".
        - torch.optim.SparseAdam (PyTorch 2.13).
    """

    _hyperparameters = ("beta_1", "beta_2", "epsilon", "maximize")

    def __init__(
        self,
        learning_rate=1e-3,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        maximize=False,
        **kwargs,
    ):
        if "weight_decay" in kwargs:
            value = validation.check_real("weight_decay",
                                          kwargs.pop("weight_decay"),
                                          low=0.0)
            if value != 0.0:
                raise ValueError(
                    "LazyAdam has no weight decay (torch.optim.SparseAdam has "
                    f"none). Received: weight_decay={value:g}"
                )
        if isinstance(validation.as_real(learning_rate), float):
            # torch.optim.SparseAdam rejects lr <= 0
            validation.check_real("learning_rate", learning_rate, low=0.0,
                                  low_open=True)
        super().__init__(
            learning_rate=learning_rate,
            weight_decay=0.0,
            maximize=maximize,
            **kwargs,
        )
        self.beta_1, self.beta_2 = check_betas(beta_1, beta_2)
        self.epsilon = validation.check_real("epsilon", epsilon, low=0.0,
                                             low_open=True)

    def _slot_specs(self):
        return [SlotSpec("exp_avg"), SlotSpec("exp_avg_sq")]

    def _rule_for(self, variable):
        """"rows" (rank >= 2: a row of the torch tensor is present or
        absent as a whole) or "elements" (each element on its own); the
        torch multi-tensor path groups variables by it."""
        return "rows" if len(variable.shape) >= 2 else "elements"

    # ------------------------------------------------------------ row masks
    #: the absent rows of an IndexedSlices gradient, set by ``update_step``
    #: for the ``_update`` call it makes (TensorFlow's Embedding gradients)
    _sparse_absent = None

    def _absent(self, grad, index):
        """1 on the absent rows (elements), 0 on the present ones, shaped
        to broadcast against the variable(s) at ``index``.

        With ``s`` the sum of ``|g|`` over a row (for the "elements" rule
        ``|g|`` itself): ``s = 0`` exactly when the whole row is 0, and
        ``s`` is NaN, inf or positive otherwise, so ``sign(s + 1) -
        sign(s)`` is 1 for an absent row and 0 for a present one (a NaN
        row included: ``self._math.sign`` gives 0 for NaN on every
        backend). The rows are those of the torch tensor the variable maps
        to (``keras_optzoo/layout.py``): the sum runs over the other axes
        (one tuple of axes per tensor on the multi-tensor path)."""
        if self._sparse_absent is not None:
            return self._sparse_absent
        size = self._math.abs(grad)
        if self._rule(index) == "rows":
            axes = tuple(_layerwise._row_axes(self.layout_of(i))
                         for i in index) if isinstance(index, tuple) \
                else _layerwise._row_axes(self.layout_of(index))
            size = self._math.sum(size, axis=axes, keepdims=True)
        return self._math.sign(size + 1.0) - self._math.sign(size)

    def update_step(self, gradient, variable, learning_rate):
        if not _is_indexed_slices(gradient):
            return super().update_step(gradient, variable, learning_rate)
        # the rows named by the indices (a duplicated or zero row included)
        import tensorflow as tf

        shape = tuple(variable.shape)
        rows = int(shape[0]) if shape[0] is not None \
            else tf.shape(variable)[0]
        hits = tf.math.unsorted_segment_max(
            tf.ones_like(gradient.indices, dtype=tf.int32),
            gradient.indices, rows)
        absent = ops.cast(ops.logical_not(hits > 0), variable.dtype)
        # (empty segments give INT_MIN)
        self._sparse_absent = ops.reshape(
            absent, (-1,) + (1,) * (len(shape) - 1))
        try:
            return super().update_step(gradient, variable, learning_rate)
        finally:
            self._sparse_absent = None

    def _update(self, param, grad, state, lr, index):
        dtype = grad.dtype
        step = self._step(dtype)
        beta_1 = self._hyper("beta_1", step.dtype)
        beta_2 = self.beta_2
        # an absent row's increments are zeroed: its values stay as they were
        absent = self._absent(grad, index)
        m_old, v_old = state["exp_avg"], state["exp_avg_sq"]
        exp_avg = _lazily(absent, m_old, (1.0 - cast_scalar(beta_1, dtype))
                          * (grad - m_old))
        exp_avg_sq = _lazily(absent, v_old, (1.0 - beta_2)
                             * (grad * grad - v_old))
        step_size = (ops.cast(lr, step.dtype)
                     * ops.sqrt(one_minus_power(beta_2, step))
                     / one_minus_power(beta_1, step))
        new_param = _lazily(absent, param, ops.cast(step_size, dtype) * (
            exp_avg / (self._math.sqrt(exp_avg_sq) + self.epsilon)),
            subtract=True)
        return new_param, {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}


def _lazily(absent, old, change, subtract=False):
    """``old + change`` (``old - change``) where ``absent`` is 0, ``old``
    where it is 1. On tensors a ``where`` between the two; on the torch
    multi-tensor path's TensorLists (which have no per-element ``where``)
    ``change`` zeroed on the absent rows (``zero_where``) and then added,
    which leaves ``old`` as it was there (its inf and NaN included)."""
    if isinstance(old, TensorList) or isinstance(change, TensorList):
        change = MATH.zero_where(absent, change)
        return old - change if subtract else old + change
    new = old - change if subtract else old + change
    return ops.where(ops.greater(absent, 0.5), old, new)
