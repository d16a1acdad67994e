"""SOAP, as pytorch-optimizer 4.1.0's SOAP (Adam in Shampoo's eigenbases)."""

import math

from keras import ops

from keras_optzoo.optimizers import _matrix
from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers.base import one_minus_power
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import ZooOptimizer
from keras_optzoo.registry import register_optimizer


def _check_positive_int(name, value):
    return validation.check_int(name, value, low=1)


class _Plan:
    """How one variable is preconditioned (decided from its torch shape)."""

    def __init__(self, torch_shape, max_dim, merge_dims, precondition_1d,
                 channels_last):
        self.torch_shape = tuple(torch_shape)
        ndim = len(self.torch_shape)
        self.permute = merge_dims and channels_last and ndim == 4
        if self.permute:
            s = self.torch_shape
            self.permuted_shape = (s[0], s[3], s[1], s[2])
        else:
            self.permuted_shape = self.torch_shape
        self.merge = merge_dims and ndim >= 2
        self.shape = (_matrix.merged_shape(self.permuted_shape, max_dim)
                      if self.merge else self.torch_shape)
        if ndim == 1:
            on = [precondition_1d and self.shape[0] <= max_dim]
        else:
            # a scalar has no axis (pytorch-optimizer's 1x1 preconditioner
            # of a merged scalar is the identity, +-1)
            on = [d <= max_dim for d in self.shape]
        self.axes = [i for i, flag in enumerate(on) if flag]

    def to_space(self, x):
        """Torch-layout tensor -> the (merged) space of the statistics."""
        if self.permute:
            x = ops.transpose(x, (0, 3, 1, 2))
        if self.merge:
            x = ops.reshape(x, self.shape)
        return x

    def from_space(self, y):
        if self.merge:
            y = ops.reshape(y, self.permuted_shape)
        if self.permute:
            y = ops.transpose(y, (0, 2, 3, 1))
        return y


@register_optimizer("soap", "SOAP, Adam in Shampoo's eigenbases "
                    "(pytorch-optimizer)")
class SOAP(ZooOptimizer):
    r"""SOAP, as `pytorch_optimizer.SOAP` (pytorch-optimizer 4.1.0).

    Adam run in the eigenbases of Shampoo's per-axis statistics. Every
    axis $i$ (of size $d_i \le$ `max_precondition_dim`) of the gradient
    $G$, read as the tensor torch holds (`keras_optzoo.layout`) and with
    small axes merged when `merge_dims`, keeps
    $L_i \leftarrow L_i + (1-\beta_s)(G_{(i)}G_{(i)}^\top - L_i)$ (the
    Gram matrix of the mode-$i$ unfolding) and an orthonormal basis $Q_i$.
    With $P(X) = X\times_i Q_i^\top$ (each axis into its basis) and
    $P^{-1}(X) = X\times_i Q_i$, the step $t \ge 2$ ($s = t-1$) is

    $$m \leftarrow m + (1-\beta_1)(g - m),\qquad
      v \leftarrow v + (1-\beta_1')(P(g)^2 - v),\ \beta_1' = \beta_2$$
    $$u = P^{-1}\!\left(\frac{P(m)}{\sqrt v + \epsilon}\right),\qquad
      \theta \leftarrow \left(\theta - \gamma
      \frac{\sqrt{1-\beta_2^s}}{1-\beta_1^s}\,u\right)(1 - \gamma\lambda)$$

    ($u \leftarrow u / (\mathrm{RMS}(u) + \epsilon)$ first when
    `normalize_gradient`; no bias correction when `correct_bias=False`),
    then $L_i$ is updated with $g$ and, when $s$ is a multiple of
    `precondition_frequency`, every $Q_i$ is refreshed by one power
    iteration: the columns are ordered by their estimated eigenvalues
    $\mathrm{diag}(Q_i^\top L_i Q_i)$ (descending; $v$'s axis $i$ is
    reordered the same way) and $Q_i \leftarrow \mathrm{QR}(L_i Q_i)$.
    The first step only accumulates $L_i$ and sets $Q_i$ to the
    eigenvectors of $L_i$ (descending eigenvalues); the parameters do not
    move, as in the reference.

    Eigenvector and QR signs: each column of $Q_i$ is multiplied by the
    sign of its entry of largest magnitude. The update does not depend on
    these signs (they cancel in $P^{-1}(\cdot / \sqrt v)$ and in the
    squares), so this only makes the saved state the same on every
    backend. Where a statistic is rank-deficient with a null space of
    dimension 2 or more (a rank-1 $L$ of a vector at the first step), the
    basis of that null space is the eigensolver's choice, in the
    reference too: the trajectory then depends on the LAPACK (or XLA)
    eigensolver on every backend, the reference's included.

    The eigendecomposition runs in the variable's dtype (float32 for half
    types); the QR in float32 for every dtype, as the reference does. On
    JAX and TF the first-step eigendecomposition and the refresh are
    branches of `ops.cond` inside the compiled step, so a step runs only
    the matrix work it needs; in eager steps (and on torch) the branch is
    taken in Python (JAX's eager `lax.cond` would trace and compile both
    branches on every call, ~1.6 s per step on a CPU).

    Differs from `keras.optimizers.Adam` (Keras has no SOAP): the second
    moment is kept in the rotated space $P(g)$ and the first moment is
    rotated into it before the division, the first step only builds the
    bases, the bias correction scales the step size, and the decoupled
    weight decay multiplies the parameters after the update.

    Decisions where the reference fails: pytorch-optimizer's
    `merge_small_dims` turns a shape that merges into a single axis into
    `(1,)`, so with `merge_dims=True` its SOAP raises for a vector of size
    `<= max_precondition_dim` or a tensor with at most that many elements;
    here vectors are never merged (as its statistics already are not) and
    a tensor merges into one axis of all its elements. A scalar gets no
    preconditioner (the reference's 1x1 basis of a merged scalar is +-1,
    the identity).

    Args:
        {{learning_rate}}
        beta_1: Float in [0, 1), the first-moment decay. Defaults to
            `0.95`.
        beta_2: Float in [0, 1), the second-moment decay. Defaults to
            `0.95`.
        shampoo_beta: Float in [0, 1) or None, the decay $\beta_s$ of the
            preconditioner statistics; None uses `beta_2`. Defaults to
            `None`.
        epsilon: Float >= 0, added to $\sqrt v$ (and to the RMS with
            `normalize_gradient`). Defaults to `1e-8`.
        weight_decay: Float >= 0, decoupled decay
            $\theta \leftarrow \theta(1-\gamma\lambda)$ after the update.
            Defaults to `1e-2`.
        precondition_frequency: Integer >= 1, the number of steps between
            eigenbasis refreshes. Defaults to `10`.
        max_precondition_dim: Integer >= 1; axes larger than this get no
            basis (identity). Defaults to `10000`.
        merge_dims: Boolean, whether adjacent small axes are merged
            (product up to `max_precondition_dim`) before preconditioning.
            Defaults to `False`.
        precondition_1d: Boolean, whether vectors are preconditioned
            too. Defaults to `False`.
        correct_bias: Boolean, whether Adam's bias correction scales the
            step. Defaults to `True`.
        normalize_gradient: Boolean, whether the update is divided by its
            RMS. Defaults to `False`.
        data_format: `"channels_first"` or `"channels_last"`: with
            `merge_dims`, a 4-D torch tensor read as NHWC is permuted to
            NCHW before merging (the reference's option; the torch layout
            of a Keras kernel is already channels-first). Defaults to
            `"channels_first"`.
        {{maximize}}
        {{base}}

    References:
        - Vyas et al., 2024, "SOAP: Improving and Stabilizing Shampoo
          using Adam" (https://arxiv.org/abs/2409.11321).
        - pytorch-optimizer 4.1.0, `pytorch_optimizer/optimizer/soap.py`.
    """

    _hyperparameters = ("beta_1", "beta_2", "shampoo_beta", "epsilon",
                        "weight_decay", "precondition_frequency",
                        "max_precondition_dim", "merge_dims",
                        "precondition_1d", "correct_bias",
                        "normalize_gradient", "data_format", "maximize")
    supports_multi_tensor = False
    #: the decay follows the update
    weight_decay_in_update = True

    def __init__(
        self,
        learning_rate=3e-3,
        beta_1=0.95,
        beta_2=0.95,
        shampoo_beta=None,
        epsilon=1e-8,
        weight_decay=1e-2,
        precondition_frequency=10,
        max_precondition_dim=10000,
        merge_dims=False,
        precondition_1d=False,
        correct_bias=True,
        normalize_gradient=False,
        data_format="channels_first",
        maximize=False,
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            decoupled_weight_decay=True,
            maximize=maximize,
            **kwargs,
        )
        for name, value in (("beta_1", beta_1), ("beta_2", beta_2)):
            setattr(self, name, validation.check_real(
                name, value, low=0.0, high=1.0, high_open=True))
        self.shampoo_beta = None if shampoo_beta is None else \
            validation.check_real("shampoo_beta", shampoo_beta, low=0.0,
                                  high=1.0, high_open=True)
        self.epsilon = validation.check_real("epsilon", epsilon, low=0.0)
        self.precondition_frequency = _check_positive_int(
            "precondition_frequency", precondition_frequency)
        self.max_precondition_dim = _check_positive_int(
            "max_precondition_dim", max_precondition_dim)
        for name, value in (("merge_dims", merge_dims),
                            ("precondition_1d", precondition_1d),
                            ("correct_bias", correct_bias),
                            ("normalize_gradient", normalize_gradient)):
            setattr(self, name, validation.check_bool(name, value))
        if data_format not in ("channels_first", "channels_last"):
            raise ValueError(
                "Argument `data_format` must be 'channels_first' or "
                f"'channels_last'. Received: data_format={data_format!r}")
        self.data_format = data_format

    def _plan(self, variable_or_index):
        return _Plan(self.layout_of(variable_or_index).torch_shape,
                     self.max_precondition_dim, self.merge_dims,
                     self.precondition_1d,
                     self.data_format == "channels_last")

    def _slot_specs_for(self, variable, rule):
        plan = self._plan(variable)
        specs = [SlotSpec("exp_avg"),
                 SlotSpec("exp_avg_sq", shape=plan.shape)]
        for i in plan.axes:
            d = plan.shape[i]
            specs.append(SlotSpec(f"GG_{i}", shape=(d, d)))
        for i in plan.axes:
            d = plan.shape[i]
            specs.append(SlotSpec(f"Q_{i}", shape=(d, d)))
        return specs

    def _update(self, param, grad, state, lr, index):
        dtype = grad.dtype
        step = self._step(dtype)
        sdt = step.dtype
        layout = self.layout_of(index)
        plan = self._plan(index)
        beta_1, beta_2 = self.beta_1, self.beta_2
        shampoo_beta = beta_2 if self.shampoo_beta is None \
            else self.shampoo_beta
        eps = self.epsilon

        g = plan.to_space(layout.to_torch(grad))
        bases = [None] * len(plan.shape)
        for i in plan.axes:
            bases[i] = state[f"Q_{i}"]

        # ---- the Adam step in the current bases (t >= 2)
        s = ops.maximum(step - 1.0, ops.ones_like(step))
        lr_s = ops.cast(lr, sdt)
        if self.correct_bias:
            step_size = lr_s * ops.sqrt(one_minus_power(beta_2, s)) / \
                one_minus_power(beta_1, s)
        else:
            step_size = lr_s
        exp_avg = state["exp_avg"] + (1.0 - beta_1) * (grad - state["exp_avg"])
        projected = _matrix.project(g, bases)
        exp_avg_sq = state["exp_avg_sq"] + (1.0 - beta_2) * (
            projected * projected - state["exp_avg_sq"])
        m = _matrix.project(plan.to_space(layout.to_torch(exp_avg)), bases)
        u = _matrix.project(m / (ops.sqrt(exp_avg_sq) + eps), bases,
                            transpose=False)
        u = layout.from_torch(plan.from_space(u))
        if self.normalize_gradient:
            numel = max(1, math.prod(grad.shape))
            rms = ops.sqrt(ops.sum(u * u) / float(numel))
            u = u / (rms + eps)
        new_param = param - ops.cast(step_size, dtype) * u
        if self._decay_mask[index]:
            new_param = new_param * (1.0 - lr * self._weight_decay_value(dtype))

        first = ops.equal(step, 1.0)
        new_param = ops.where(first, param, new_param)
        exp_avg = ops.where(first, state["exp_avg"], exp_avg)
        exp_avg_sq = ops.where(first, state["exp_avg_sq"], exp_avg_sq)
        new = {"exp_avg": exp_avg}
        if not plan.axes:
            new["exp_avg_sq"] = exp_avg_sq
            return new_param, new

        # ---- statistics, then the bases: eigh on step 1, QR every k steps
        grams = []
        for i in plan.axes:
            old = state[f"GG_{i}"]
            grams.append(old + (1.0 - shampoo_beta) * (
                _matrix.mode_gram(g, i) - old))
        old_bases = [state[f"Q_{i}"] for i in plan.axes]

        def initialise():
            return ([_matrix.eigenbasis(gram) for gram in grams],
                    exp_avg_sq)

        def refresh():
            second = exp_avg_sq
            out = []
            for i, gram, basis in zip(plan.axes, grams, old_bases):
                order, new_basis = _matrix.qr_refresh(gram, basis)
                second = ops.take(second, order, axis=i)
                out.append(new_basis)
            return out, second

        def keep():
            return list(old_bases), exp_avg_sq

        s_int = ops.cast(self.iterations, "int32")  # s = t - 1
        due = ops.logical_and(
            ops.greater(s_int, 0),
            ops.equal(ops.mod(s_int, self.precondition_frequency), 0))
        new_bases, exp_avg_sq = _matrix.branch(
            first, initialise, lambda: _matrix.branch(due, refresh, keep))
        new["exp_avg_sq"] = exp_avg_sq
        for i, gram, basis in zip(plan.axes, grams, new_bases):
            new[f"GG_{i}"] = gram
            new[f"Q_{i}"] = basis
        return new_param, new
