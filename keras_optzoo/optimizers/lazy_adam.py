"""LazyAdam: Adam that touches only the rows that received gradient, as
torch.optim.SparseAdam."""

from keras import ops

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

    The row masks need a reduction per variable, so on the torch backend
    this optimizer runs the per-variable `update_step` (`update_path` is
    "per-variable").

    References:
        - Kingma and Ba, 2015, "Adam: A Method for Stochastic Optimization".
        - torch.optim.SparseAdam (PyTorch 2.13).
    """

    _hyperparameters = ("beta_1", "beta_2", "epsilon", "maximize")

    supports_multi_tensor = False

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

    # ------------------------------------------------------------ row masks
    def _present(self, gradient, variable, index):
        """Boolean tensor broadcastable to the variable: the present rows
        (rows of the torch tensor the variable maps to: an Embedding's
        token rows, a Dense kernel's output units; keras_optzoo/layout.py)."""
        shape = tuple(variable.shape)
        if _is_indexed_slices(gradient):
            import tensorflow as tf

            rows = int(shape[0]) if shape[0] is not None \
                else tf.shape(variable)[0]
            hits = tf.math.unsorted_segment_max(
                tf.ones_like(gradient.indices, dtype=tf.int32),
                gradient.indices, rows)
            present = hits > 0  # empty segments give INT_MIN
            return ops.reshape(present, (-1,) + (1,) * (len(shape) - 1))
        nonzero = ops.not_equal(gradient, ops.zeros((), gradient.dtype))
        if len(shape) <= 1:
            return nonzero
        units = set(self.layout_of(index).unit_axes)
        return ops.any(nonzero, axis=tuple(a for a in range(len(shape))
                                           if a not in units),
                       keepdims=True)

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        self._mask = self._present(gradient, variable, index)
        param, grad, lr = self._prepare(gradient, variable, learning_rate,
                                        index)
        state = {name: slots[index].value
                 for name, slots in self._slots.items()}
        new_param, new_state = self._update(param, grad, state, lr, index)
        self.assign(variable, new_param)
        for name, value in new_state.items():
            self.assign(self._slots[name][index], value)

    def _update(self, param, grad, state, lr, index):
        dtype = grad.dtype
        step = self._step(dtype)
        beta_1 = self._hyper("beta_1", step.dtype)
        beta_2 = self.beta_2
        m_old, v_old = state["exp_avg"], state["exp_avg_sq"]
        exp_avg = m_old + (1.0 - cast_scalar(beta_1, dtype)) * (grad - m_old)
        exp_avg_sq = v_old + (1.0 - beta_2) * (grad * grad - v_old)
        step_size = (ops.cast(lr, step.dtype)
                     * ops.sqrt(one_minus_power(beta_2, step))
                     / one_minus_power(beta_1, step))
        new_param = param - ops.cast(step_size, dtype) * (
            exp_avg / (self._math.sqrt(exp_avg_sq) + self.epsilon))
        present = self._mask
        return self._math.where(present, new_param, param), {
            "exp_avg": self._math.where(present, exp_avg, m_old),
            "exp_avg_sq": self._math.where(present, exp_avg_sq, v_old),
        }
