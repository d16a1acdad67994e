"""AdamP (Adam with radial-component projection), as timm's `AdamP`
(clovaai's code)."""

from keras import ops

from keras_optzoo.optimizers import _layerwise
from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import one_minus_power
from keras_optzoo.optimizers.base import ZooOptimizer
from keras_optzoo.registry import register_optimizer


def check_projection(delta, wd_ratio, epsilon):
    """Validates AdamP/SGDP's projection arguments."""
    return (validation.check_real("delta", delta, low=0.0),
            validation.check_real("wd_ratio", wd_ratio, low=0.0),
            validation.check_real("epsilon", epsilon, low=0.0))


@register_optimizer("adamp", "AdamP: Adam that removes the radial component "
                    "of scale-invariant weights (timm 1.0.31 AdamP, "
                    "clovaai's)")
class AdamP(ZooOptimizer):
    r"""AdamP, as timm 1.0.31's `timm.optim.adamp.AdamP` (clovaai's code).

    Adam's direction (ε after the bias-corrected root, as `torch.optim.Adam`)

    $$p_t = \frac{m_t}{\sqrt{v_t}/\sqrt{1-\beta_2^t} + \epsilon}
      \quad\text{or, with nesterov,}\quad
      \frac{\beta_1 m_t + (1-\beta_1) g_t}{\sqrt{v_t}/\sqrt{1-\beta_2^t}
      + \epsilon}$$

    is projected for variables of rank >= 2: for the channel view (rows =
    the first axis of the torch tensor the variable maps to: a Dense
    kernel's output units, a convolution's filters; see
    `keras_optzoo.layout`) and then the layer view (one row), if
    $\max_{\text{rows}} |\cos(g, \theta)| < \delta/\sqrt{\text{row length}}$
    (the weight looks scale-invariant) the radial part is removed,
    $p_t \leftarrow p_t - \hat\theta\,\langle\hat\theta, p_t\rangle$ per row
    with $\hat\theta = \theta/(\lVert\theta\rVert + \epsilon)$, and the weight
    decay is scaled by `wd_ratio`. Then

    $$\theta_t = \theta_{t-1}(1 - \gamma\lambda\rho) -
      \frac{\gamma}{1-\beta_1^t}\,p_t$$

    with $\rho$ = `wd_ratio` if projected, else 1 (decoupled decay,
    computed from the parameter before the step). With `caution`, timm's
    cautious masking: against the tangential gradient (then projected
    again) where projected, against the gradient elsewhere.

    Differs from `keras.optimizers.Adam` (Keras has no AdamP): no
    projection, and Keras's ε is added to the uncorrected root. Differs
    from `optax`, which has no AdamP, and agrees with pytorch-optimizer's
    `AdamP` except for its extra options.

    Args:
        {{learning_rate}}
        beta_1: Float in [0, 1). Defaults to `0.9`.
        beta_2: Float in [0, 1). Defaults to `0.999`.
        epsilon: Float >= 0, in Adam's denominator and in the projection's
            norms. Defaults to `1e-8`.
        weight_decay: Float >= 0, decoupled (`param *= 1 - lr * wd * ratio`);
            variables excluded with `exclude_from_weight_decay()` get none.
            Defaults to `0.0`.
        delta: Float >= 0, the cosine threshold of the projection.
            Defaults to `0.1`.
        wd_ratio: Float >= 0, the weight-decay factor of projected weights.
            Defaults to `0.1`.
        nesterov: Bool. Nesterov-style direction. Defaults to `False`.
        caution: Bool. Cautious updates (timm's `caution`).
            Defaults to `False`.
        maximize: Bool. Maximise the objective: the gradient is negated
            first. An extension: timm's AdamP has no `maximize`.
            Defaults to `False`.
        {{base}}

    References:
        - Heo et al., 2021, "AdamP: Slowing Down the Slowdown for Momentum
          Optimizers on Scale-invariant Weights"; code: clovaai/AdamP.
        - Liang et al., 2024, "Cautious Optimizers".
    """

    _hyperparameters = ("beta_1", "beta_2", "epsilon", "weight_decay",
                        "delta", "wd_ratio", "nesterov", "caution",
                        "maximize")

    #: the reference's decay is applied in _update
    weight_decay_in_update = True

    def __init__(
        self,
        learning_rate=1e-3,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        weight_decay=0.0,
        delta=0.1,
        wd_ratio=0.1,
        nesterov=False,
        caution=False,
        maximize=False,
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            maximize=maximize,
            **kwargs,
        )
        self.beta_1 = validation.check_real("beta_1", beta_1, low=0.0,
                                            high=1.0, high_open=True)
        self.beta_2 = validation.check_real("beta_2", beta_2, low=0.0,
                                            high=1.0, high_open=True)
        self.delta, self.wd_ratio, self.epsilon = check_projection(
            delta, wd_ratio, epsilon)
        self.nesterov = validation.check_bool("nesterov", nesterov)
        self.caution = validation.check_bool("caution", caution)

    def _slot_specs(self):
        return [SlotSpec("exp_avg"), SlotSpec("exp_avg_sq")]

    def _rule_for(self, variable):
        return _projection_rule(variable)

    def _update(self, param, grad, state, lr, index):
        dtype = grad.dtype
        beta_1, beta_2 = self.beta_1, self.beta_2
        exp_avg = beta_1 * state["exp_avg"] + (1.0 - beta_1) * grad
        exp_avg_sq = beta_2 * state["exp_avg_sq"] + (1.0 - beta_2) * grad \
            * grad
        step = self._step(dtype)
        bias_1 = one_minus_power(beta_1, step)
        bias_2_sqrt = ops.cast(ops.sqrt(one_minus_power(beta_2, step)), dtype)
        denom = self._math.sqrt(exp_avg_sq) / bias_2_sqrt + self.epsilon
        step_size = ops.cast(ops.cast(lr, step.dtype) / bias_1, dtype)
        if self.nesterov:
            perturb = (beta_1 * exp_avg + (1.0 - beta_1) * grad) / denom
        else:
            perturb = exp_avg / denom
        perturb, factor = project(self, param, grad, perturb, index)
        if self._decays(index):
            param = param * (1.0 - lr * self._weight_decay_value(
                param.dtype) * factor)
        new_param = param - step_size * perturb
        return new_param, {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}


def _projection_rule(variable):
    """AdamP/SGDP's rule (``ZooOptimizer._rule_for``): "projected" for a
    variable of rank >= 2, else None (caution alone). The fast path groups
    variables by rule, so ``_update`` decides once for a whole group."""
    return "projected" if len(variable.shape) > 1 else None


def project(optimizer, param, grad, perturb, index):
    """AdamP/SGDP: the projection for rank >= 2, caution alone below.

    The channel view is the first axis of the torch tensor the variable
    maps to (``keras_optzoo/layout.py``): a Dense kernel's output units, a
    convolution's filters, an Embedding's rows, as the reference sees them
    on the same model written in torch. ``index`` is a variable's index, or
    on the fast path the tuple of a group's (``param`` and co. TensorLists).
    """
    if optimizer._rule(index) == "projected":
        if isinstance(index, tuple):
            layouts = tuple(optimizer.layout_of(i) for i in index)
        else:
            layouts = optimizer.layout_of(index)
        return _layerwise.projection(
            param, grad, perturb, layouts, optimizer.delta,
            optimizer.wd_ratio, optimizer.epsilon, optimizer.caution)
    if optimizer.caution:
        perturb = _layerwise.caution(perturb, grad)
    return perturb, 1.0
