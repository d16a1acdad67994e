"""ADOPT, as pytorch-optimizer's `ADOPT`."""

from keras import ops

from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers._caution_and_decay import OwnWeightDecay
from keras_optzoo.optimizers._caution_and_decay import pto_caution
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import ZooOptimizer
from keras_optzoo.registry import register_optimizer


def check_pto_decay(weight_decay, decoupled_weight_decay, fixed_decay):
    """pytorch-optimizer's decay flags (`fixed_decay` needs decoupling)."""
    validation.check_bool("fixed_decay", fixed_decay)
    if fixed_decay and not decoupled_weight_decay:
        raise ValueError(
            "Argument `fixed_decay` needs `decoupled_weight_decay=True` (it "
            "drops the learning rate from the decoupled decay). Received: "
            f"fixed_decay={fixed_decay}, decoupled_weight_decay="
            f"{decoupled_weight_decay}")
    return fixed_decay


def pto_weight_decay(opt, param, grad, lr, index):
    """pytorch-optimizer's ``apply_weight_decay`` (before the update):
    L2 on the gradient, or ``param *= 1 - wd * (1 if fixed_decay else lr)``.
    """
    if not (opt.weight_decay and opt._decays(index)):
        return param, grad
    wd = opt._weight_decay_value(lr.dtype)
    if not opt.decoupled_weight_decay:
        return param, grad + wd * param
    scale = wd if opt.fixed_decay else lr * wd
    return param * (1.0 - scale), grad


@register_optimizer("adopt", "ADOPT, Adam normalising by the previous second "
                    "moment, with clipping (pytorch-optimizer 4.1.0)")
class ADOPT(OwnWeightDecay, ZooOptimizer):
    r"""ADOPT, as `pytorch_optimizer.ADOPT` 4.1.0.

    The gradient is normalised by the second moment of the *previous* steps
    (so $g_t$ and $v_{t-1}$ are independent), clipped, then averaged:

    $$\hat g_t = \mathrm{clip}\!\left(\frac{g_t}{\max(\sqrt{v_{t-1}},
      \epsilon)},\ t^{p}\right),\qquad
      m_t = \beta_1 m_{t-1} + (1-\beta_1)\hat g_t,\qquad
      \theta_t = \theta_{t-1} - \gamma m_t$$
    $$v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2$$

    where clip(x, c) limits x to [-c, c] and $p$ is `clip_exponent`. The
    first step only sets $v_1 = g_1^2$: the parameters do not move (weight
    decay still applies). No bias correction. With `caution=True`
    (pytorch-optimizer's `cautious`) the step uses
    $m_t \cdot \mathbb{1}[m_t \hat g_t > 0] \cdot n / (\sum\mathbb{1} + 1)$,
    $n$ the tensor's size.

    Differs from `keras.optimizers.Adam` (Keras has no ADOPT): Adam divides
    the momentum of raw gradients by the current bias-corrected second
    moment; ADOPT normalises each gradient by the previous one, clips it and
    does not correct bias. Differs from timm's `Adopt`: timm clips at
    $(t-1)^{0.333}$ (`clip_exp=0.333`), applies decoupled decay only from
    the second step on, and scales its cautious mask by
    $1/\max(\text{mean}, 10^{-3})$ against the raw gradient.
    pytorch-optimizer's `stable_adamw` option is not offered.

    Args:
        {{learning_rate}}
        beta_1: Float in [0, 1). Defaults to `0.9`.
        beta_2: Float in [0, 1). Defaults to `0.9999`.
        epsilon: Float >= 0, the floor of $\sqrt{v}$. Defaults to `1e-6`.
        clip_exponent: Float >= 0 or None: the normalised gradient is
            clipped to $\pm t^{p}$ (the reference's default
            `clip_lambda=lambda step: step ** 0.25`); None: no clipping
            (`clip_lambda=None`). Defaults to `0.25`.
        {{weight_decay}}
        decoupled_weight_decay: Bool (the reference's `weight_decouple`).
            `param *= 1 - learning_rate * weight_decay` before the update
            instead of the L2 term. Defaults to `False`.
        fixed_decay: Bool. With `decoupled_weight_decay`, leave the learning
            rate out: `param *= 1 - weight_decay`. Defaults to `False`.
        caution: Bool. pytorch-optimizer's `cautious` (see above).
            Defaults to `False`.
        {{maximize}}
        {{base}}

    References:
        - Taniguchi et al., 2024, "ADOPT: Modified Adam Can Converge with Any
          β2 with the Optimal Rate" (https://arxiv.org/abs/2411.02853); code:
          https://github.com/iShohei220/adopt.
        - Liang et al., 2024, "Cautious Optimizers"
          (https://arxiv.org/abs/2411.16085).
    """

    _hyperparameters = ("beta_1", "beta_2", "epsilon", "clip_exponent",
                        "weight_decay", "decoupled_weight_decay",
                        "fixed_decay", "caution", "maximize")

    def __init__(
        self,
        learning_rate=1e-3,
        beta_1=0.9,
        beta_2=0.9999,
        epsilon=1e-6,
        clip_exponent=0.25,
        weight_decay=0.0,
        decoupled_weight_decay=False,
        fixed_decay=False,
        caution=False,
        maximize=False,
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize,
            **kwargs,
        )
        self.beta_1 = validation.check_real("beta_1", beta_1, low=0.0,
                                            high=1.0, high_open=True)
        self.beta_2 = validation.check_real("beta_2", beta_2, low=0.0,
                                            high=1.0, high_open=True)
        self.epsilon = validation.check_real("epsilon", epsilon, low=0.0)
        self.clip_exponent = None if clip_exponent is None else \
            validation.check_real("clip_exponent", clip_exponent, low=0.0)
        self.fixed_decay = check_pto_decay(weight_decay,
                                           self.decoupled_weight_decay,
                                           fixed_decay)
        self.caution = validation.check_bool("caution", caution)

    def _slot_specs(self):
        return [SlotSpec("exp_avg"), SlotSpec("exp_avg_sq")]

    def _update(self, param, grad, state, lr, index):
        dtype = grad.dtype
        step = self._step(dtype)
        param, grad = pto_weight_decay(self, param, grad, lr, index)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        first = ops.equal(step, 1.0)
        normed = grad / self._math.maximum(self._math.sqrt(exp_avg_sq),
                                           self.epsilon)
        if self.clip_exponent is not None:
            clip = ops.cast(ops.power(step, self.clip_exponent), dtype)
            normed = self._math.minimum(self._math.maximum(normed, -clip),
                                        clip)
        where = self._math.where
        new_avg = where(first, exp_avg,
                        exp_avg + (1.0 - self.beta_1) * (normed - exp_avg))
        update = pto_caution(new_avg, normed, self, index) \
            if self.caution else new_avg
        new_param = param - lr * update
        grad_sq = grad * grad
        new_sq = self.beta_2 * exp_avg_sq + (1.0 - self.beta_2) * grad_sq
        return where(first, param, new_param), {
            "exp_avg": new_avg,
            "exp_avg_sq": where(first, exp_avg_sq + grad_sq, new_sq),
        }
