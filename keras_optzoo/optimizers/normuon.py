"""NorMuon, as pytorch-optimizer 4.1.0's ``NorMuon``."""

import math
import re

from keras import ops

from keras_optzoo.optimizers import _matrix
from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import ZooOptimizer
from keras_optzoo.optimizers.base import one_minus_power
from keras_optzoo.registry import register_optimizer

_UPDATE_SCALES = ("preserve_norm", "match_rms")


def check_exclude_layers(exclude_layers):
    if exclude_layers is None:
        exclude_layers = []
    if isinstance(exclude_layers, str) or not all(
            isinstance(p, str) for p in exclude_layers):
        raise TypeError(
            "Argument `exclude_layers` must be a list of regular "
            f"expressions (strings). Received: "
            f"exclude_layers={exclude_layers!r}")
    for pattern in exclude_layers:
        re.compile(pattern)
    return list(exclude_layers)


@register_optimizer("normuon", "Muon with a per-row (neuron-wise) second "
                    "moment, AdamW for the rest (pytorch-optimizer NorMuon)")
class NorMuon(ZooOptimizer):
    r"""NorMuon, as `pytorch_optimizer.NorMuon` (pytorch-optimizer 4.1.0):
    Muon whose orthogonalised update is normalised per output neuron, with
    AdamW for the variables it does not take.

    For a variable whose torch tensor has 2 or more dimensions ("normuon"
    rule), read as the matrix $W$ of torch's shape $(m, n)$ (its first
    axis, the output neurons, by the rest flattened; through the layout
    rule, `keras_optzoo.layout`: a Dense kernel `(in, out)` is the Linear
    weight `(out, in)`, a Conv kernel `(k..., in, out)` is
    `(out, in*k...)`), with $\mu$ = `momentum`, $\gamma$ =
    `learning_rate`, $\lambda$ = `weight_decay`:

    $$B_t = \mu B_{t-1} + (1-\mu) g_t,\qquad
      U_t = g_t + \mu(B_t - g_t)\ \text{(nesterov) or } B_t$$
    $$O_t = \mathrm{NS}(U_t),\qquad
      v_t = \beta_2 v_{t-1} + (1-\beta_2)\,\mathrm{mean}_j\,O_{t,ij}^2$$
    $$\hat O_t = O_t / (\sqrt{v_t} + \epsilon),\qquad
      \theta_t = \theta_{t-1}(1-\gamma\lambda) - \gamma\,s\,
      \hat O_t\,\frac{r}{\|\hat O_t\|_F + \epsilon}$$

    ($v$ holds one value per row, no bias correction.) `update_scale=
    "preserve_norm"`: $r = \|O_t\|_F$ and $s = \sqrt{\max(1, m/n)}$, or
    $0.2\sqrt{\max(m, n)}$ with `use_adjusted_lr`; `"match_rms"`:
    $r = 0.2\sqrt{mn}$ and $s = 1$. $\mathrm{NS}$ runs `ns_steps`
    Newton-Schulz iterations with `ns_coefficients` (as
    :class:`Muon`'s: a triple, a list of per-step triples or a name)
    normalising by $\max(\|U\|_F, 10^{-7})$, in `ns_dtype`.

    Every other variable ("adamw" rule) takes the reference's AdamW groups'
    update with the `adamw_*` hyperparameters: $\theta \leftarrow
    \theta(1-\gamma_a\lambda_a)$, Adam's moments (lerps), $\theta \leftarrow
    \theta - \gamma_a/(1-\beta_1^t)\, m / (\sqrt{v}/\sqrt{1-\beta_2^t} +
    \epsilon_a)$.

    Routing: the reference takes a `use_muon` flag per param group (its
    docstring: hidden matrices and higher-dimensional weights on the Muon
    side; embeddings, heads, biases and gains on the AdamW side). Here the
    flag is decided per variable, as :class:`Muon` does: a variable whose
    torch tensor has fewer than 2 dimensions, whose path contains
    "embedding" (when `exclude_embeddings`) or matches a regex of
    `exclude_layers` takes the AdamW rule, the others (convolution kernels
    included, flattened as the reference flattens them) the NorMuon rule.
    Put a classifier head in `exclude_layers` to match the reference's
    recipe.

    `ns_dtype="bfloat16"` (the reference's) runs Newton-Schulz as torch
    does on CPU in bfloat16 (see :class:`Muon`); `"float32"` equals the
    reference's algorithm run in float32.

    On the torch backend this optimizer runs the per-variable
    `update_step`.

    Differs from `keras.optimizers.Muon` (Keras has no NorMuon): Keras's
    Muon has no per-row second moment and no norm-preserving rescaling
    (and differs from torch's Muon as :class:`Muon` says).

    Args:
        {{learning_rate}}
        momentum: Float in [0, 1). Defaults to `0.95`.
        beta_2: Float in [0, 1), the decay of the per-row second moment.
            Defaults to `0.95`.
        weight_decay: Float >= 0, decoupled decay
            $\theta \leftarrow \theta(1-\gamma\lambda)$ of the NorMuon rule.
            Defaults to `0.0`.
        nesterov: Bool. Defaults to `True`.
        ns_steps: Integer >= 1. Defaults to `5`.
        ns_coefficients: As :class:`Muon`'s. Defaults to `"original"`
            (torch's triple).
        update_scale: `"preserve_norm"` or `"match_rms"`.
            Defaults to `"preserve_norm"`.
        use_adjusted_lr: Bool, the $0.2\sqrt{\max(m, n)}$ factor in
            `"preserve_norm"` mode. Defaults to `False`.
        epsilon: Float >= 0, added to the row-wise denominator and to the
            norm. Defaults to `1e-10`.
        ns_dtype: `"bfloat16"` or `"float32"`. Defaults to `"bfloat16"`.
        exclude_embeddings: Bool. Defaults to `True`.
        exclude_layers: List of regexes. Defaults to `None`.
        adamw_learning_rate: Float / schedule of the AdamW rule, or None
            (it follows `learning_rate`). `learning_rate_scale` scales both.
            Defaults to `3e-4`.
        adamw_beta_1: Float in [0, 1). Defaults to `0.9`.
        adamw_beta_2: Float in [0, 1). Defaults to `0.95`.
        adamw_epsilon: Float >= 0. Defaults to `1e-10`.
        adamw_weight_decay: Float >= 0. Defaults to `0.0`.
        {{base}}

    References:
        - Li et al., 2025, "NorMuon: Making Muon more efficient and
          scalable" (https://arxiv.org/abs/2510.05491).
        - pytorch-optimizer 4.1.0, `pytorch_optimizer/optimizer/muon/
          normuon.py`.
    """

    _hyperparameters = (
        "weight_decay", "momentum", "beta_2", "nesterov", "ns_steps",
        "ns_coefficients", "update_scale", "use_adjusted_lr", "epsilon",
        "ns_dtype", "exclude_embeddings", "exclude_layers",
        "adamw_learning_rate", "adamw_beta_1", "adamw_beta_2",
        "adamw_epsilon", "adamw_weight_decay", "maximize",
    )
    supports_multi_tensor = False
    weight_decay_in_update = True
    #: the reference's Newton-Schulz normalisation floor
    _NS_EPSILON = 1e-7

    def __init__(
        self,
        learning_rate=2e-2,
        momentum=0.95,
        beta_2=0.95,
        weight_decay=0.0,
        nesterov=True,
        ns_steps=5,
        ns_coefficients="original",
        update_scale="preserve_norm",
        use_adjusted_lr=False,
        epsilon=1e-10,
        ns_dtype="bfloat16",
        exclude_embeddings=True,
        exclude_layers=None,
        adamw_learning_rate=3e-4,
        adamw_beta_1=0.9,
        adamw_beta_2=0.95,
        adamw_epsilon=1e-10,
        adamw_weight_decay=0.0,
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
        self.momentum = validation.check_real(
            "momentum", momentum, low=0.0, high=1.0, high_open=True)
        self.beta_2 = validation.check_real(
            "beta_2", beta_2, low=0.0, high=1.0, high_open=True)
        self.nesterov = validation.check_bool("nesterov", nesterov)
        self.ns_steps = validation.check_int("ns_steps", ns_steps, 1)
        self.ns_coefficients = _matrix.check_ns_coefficients(ns_coefficients)
        self._ns_schedule = _matrix.ns_coefficient_schedule(
            self.ns_coefficients, self.ns_steps)
        if update_scale not in _UPDATE_SCALES:
            raise ValueError(
                "Argument `update_scale` must be 'preserve_norm' or "
                f"'match_rms'. Received: update_scale={update_scale!r}")
        self.update_scale = update_scale
        self.use_adjusted_lr = validation.check_bool("use_adjusted_lr",
                                                     use_adjusted_lr)
        self.epsilon = validation.check_real("epsilon", epsilon, low=0.0)
        self.ns_dtype = _matrix.check_ns_dtype(ns_dtype)
        self.exclude_embeddings = validation.check_bool(
            "exclude_embeddings", exclude_embeddings)
        self.exclude_layers = check_exclude_layers(exclude_layers)
        if adamw_learning_rate is not None:
            adamw_learning_rate = validation.as_real(adamw_learning_rate)
            adamw_learning_rate = validation.check_real_or_schedule(
                "adamw_learning_rate", adamw_learning_rate, low=0.0)
        self.adamw_learning_rate = adamw_learning_rate
        self.adamw_beta_1 = validation.check_real(
            "adamw_beta_1", adamw_beta_1, low=0.0, high=1.0, high_open=True)
        self.adamw_beta_2 = validation.check_real(
            "adamw_beta_2", adamw_beta_2, low=0.0, high=1.0, high_open=True)
        self.adamw_epsilon = validation.check_real("adamw_epsilon",
                                                   adamw_epsilon, low=0.0)
        self.adamw_weight_decay = validation.check_real(
            "adamw_weight_decay", adamw_weight_decay, low=0.0)

    def get_config(self):
        config = super().get_config()
        config["ns_coefficients"] = _matrix.config_form(self.ns_coefficients)
        return config

    # ---------------------------------------------------------------- rules
    def _rule_for(self, variable):
        if len(self.layout_of(variable).torch_shape) < 2:
            return "adamw"
        path = getattr(variable, "path", None) or variable.name
        if self.exclude_embeddings and "embedding" in path.lower():
            return "adamw"
        if any(re.search(p, path) for p in self.exclude_layers):
            return "adamw"
        return "normuon"

    def _slot_specs_for(self, variable, rule):
        if rule == "normuon":
            rows = self.layout_of(variable).torch_shape[0]
            return [SlotSpec("momentum_buffer"),
                    SlotSpec("second_momentum_buffer", shape=(rows, 1))]
        return [SlotSpec("exp_avg"), SlotSpec("exp_avg_sq")]

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._decay_allowed = [self._use_weight_decay(v) for v in var_list]

    @property
    def rules(self):
        """The rule ("normuon" or "adamw") of each variable."""
        return list(self._rules)

    # --------------------------------------------------------------- update
    def _update(self, param, grad, state, lr, index):
        if self._rules[index] == "normuon":
            return self._normuon_update(param, grad, state, lr, index)
        return self._adamw_update(param, grad, state, lr, index)

    def _lr_ratio(self, torch_shape):
        rows = int(torch_shape[0])
        cols = math.prod(int(d) for d in torch_shape[1:])
        if self.update_scale == "match_rms":
            return 1.0
        if self.use_adjusted_lr:
            return 0.2 * math.sqrt(max(rows, cols))
        return math.sqrt(max(1.0, rows / cols))

    def _normuon_update(self, param, grad, state, lr, index):
        dtype = grad.dtype
        mu = self.momentum
        eps = self.epsilon
        buf = state["momentum_buffer"]
        buf = buf + (1.0 - mu) * (grad - buf)
        update = grad + mu * (buf - grad) if self.nesterov else buf
        layout = self.layout_of(index)
        torch_shape = layout.torch_shape
        rows = int(torch_shape[0])
        matrix = ops.reshape(layout.to_torch(update), (rows, -1))
        ortho = ops.cast(
            _matrix.newton_schulz(matrix, self._ns_schedule,
                                  self._NS_EPSILON, self.ns_dtype), dtype)
        sq = ortho * ortho
        second = state["second_momentum_buffer"]
        second = second + (1.0 - self.beta_2) * (
            ops.mean(sq, axis=-1, keepdims=True) - second)
        normalised = ortho / (ops.sqrt(second) + eps)
        norm = ops.sqrt(ops.sum(normalised * normalised)) + eps
        if self.update_scale == "preserve_norm":
            # torch's update.norm() does not underflow (tiny gradients)
            target = _matrix.scaled_norm(ortho)
        else:
            target = 0.2 * math.sqrt(float(math.prod(torch_shape)))
        normalised = normalised * (target / norm)
        update = layout.from_torch(ops.reshape(normalised, torch_shape))
        if self._decay_allowed[index] and self.weight_decay:
            param = param * (1.0 - lr * self._weight_decay_value(dtype))
        param = param - (lr * self._lr_ratio(torch_shape)) * update
        return param, {"momentum_buffer": buf,
                       "second_momentum_buffer": second}

    def _adamw_lr(self, lr, dtype):
        if self.adamw_learning_rate is None:
            return lr
        return ops.cast(
            ops.multiply(
                ops.cast(self._hyper("adamw_learning_rate", "float32"),
                         "float32"),
                self._learning_rate_scale.value),
            dtype)

    def _adamw_update(self, param, grad, state, lr, index):
        dtype = grad.dtype
        step = self._step(dtype)
        lr = self._adamw_lr(lr, dtype)
        if self._decay_allowed[index] and self.adamw_weight_decay:
            param = param * (1.0 - lr * self.adamw_weight_decay)
        beta_1, beta_2 = self.adamw_beta_1, self.adamw_beta_2
        exp_avg = state["exp_avg"] + (1.0 - beta_1) * (grad - state["exp_avg"])
        exp_avg_sq = state["exp_avg_sq"] + (1.0 - beta_2) * (
            grad * grad - state["exp_avg_sq"])
        bias_1 = one_minus_power(beta_1, step)
        bias_2_sqrt = ops.sqrt(one_minus_power(beta_2, step))
        step_size = ops.cast(lr, step.dtype) / bias_1
        denom = (ops.sqrt(exp_avg_sq) / ops.cast(bias_2_sqrt, dtype)
                 + self.adamw_epsilon)
        param = param - ops.cast(step_size, dtype) * (exp_avg / denom)
        return param, {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
