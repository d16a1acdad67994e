"""AdaMuon, as timm 1.0.31's ``Muon(algo="adamuon")``."""

import math

from keras import ops

from keras_optzoo.optimizers import _matrix
from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers._matrix_routed import MatrixRouted
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import first_index
from keras_optzoo.optimizers.base import one_minus_power
from keras_optzoo.registry import register_optimizer

_ADJUST_LR_FNS = (None, "match_rms_adamw", "rms_to_rms", "rsqrt_in")


def suitable_for_muon(torch_shape, min_dim_size=4, max_aspect_ratio=128.0):
    """timm's ``_is_suitable_for_muon`` on the torch tensor's shape."""
    s = tuple(int(d) for d in torch_shape)
    if len(s) < 2 or sum(1 for d in s if d > 1) < 2:
        return False
    if s[0] == 1 or s[1] == 1:
        return False
    dims = (s[0], math.prod(s[1:])) if len(s) >= 3 else s
    if min(dims) < min_dim_size:
        return False
    return max(dims) / min(dims) <= max_aspect_ratio


@register_optimizer("adamuon", "AdaMuon: Muon with an element-wise second "
                    "moment of the orthogonalised update (timm Muon "
                    "algo='adamuon')")
class AdaMuon(MatrixRouted):
    r"""AdaMuon, as timm 1.0.31's `timm.optim.Muon(algo="adamuon")` with
    timm's defaults, AdamW (NAdamW with `nesterov`) for the other variables.

    For a variable timm finds suitable ("adamuon" rule), read as its torch
    tensor through the layout rule (`keras_optzoo.layout`: a Dense kernel
    is the Linear weight `(out, in)`, a Conv kernel `(out, in, k...)`) and
    flattened to $W$ of shape $(m, n)$ = `(out, in*k...)` (timm's
    `conv_mode="flatten"`), with $\mu$ = `momentum`, $\gamma$ =
    `learning_rate`, $\lambda$ = `weight_decay`, $\beta_2$ = `beta_2`:

    $$\theta \leftarrow \theta(1-\gamma\lambda),\quad
      B_t = \mu B_{t-1} + (1-\mu) g_t,\quad
      U_t = g_t + \mu(B_t - g_t)\ \text{(nesterov) or } B_t$$
    $$O_t = \mathrm{NS}(U_t),\quad
      v_t = \beta_2 v_{t-1} + (1-\beta_2) O_t^2$$

    `adjust_lr_fn="match_rms_adamw"`: $P = O_t/(\sqrt{v_t}+\epsilon)$,
    $\theta \leftarrow \theta - 0.2\gamma\sqrt{mn}\,P/(\|P\|_F+\epsilon)$;
    otherwise $P = O_t/(\sqrt{v_t/(1-\beta_2^t)}+\epsilon)$ and
    $\theta \leftarrow \theta - \gamma s P$ with $s$ = $\sqrt{m/n}$
    (`"rms_to_rms"`), $1/\sqrt{n}$ (`"rsqrt_in"`) or 1 (None).
    $\mathrm{NS}$: Newton-Schulz with `ns_coefficients` (default timm's
    `"quintic"` schedule; as :class:`Muon`'s argument) for `ns_steps`
    steps, normalising by $\max(\|U\|_F, \epsilon)$, in `ns_dtype`.

    Routing (timm's `_is_suitable_for_muon`, on the torch shape): the
    AdaMuon rule takes a tensor of 2+ dimensions with at least two
    non-unit dimensions, neither of its first two dimensions 1 (so no
    depthwise kernel), whose flattened $(m, n)$ has $\min \ge 4$ and
    aspect ratio $\le 128$. Every other variable, and those matched by
    `exclude_layers` (timm's `use_fallback` groups), takes timm's AdamW
    with $\beta_1$ = `beta_1`, $\beta_2$, $\epsilon$, $\lambda$ and the
    learning rate $\gamma\cdot$`fallback_learning_rate_scale` (timm's
    NAdamW, $\hat m = m + (1-\beta_1)(g - m)$ in the numerator, when
    `nesterov`).

    `ns_dtype="bfloat16"` (timm's) runs Newton-Schulz as torch does on CPU
    in bfloat16 (see :class:`Muon`); `"float32"` equals timm's algorithm
    run in float32. Not supported: timm's `conv_mode="batched"`,
    `safety_factor` other than 1 and `scale_eps`.

    On the torch backend the multi-tensor fast path runs it: the fallback
    and the AdaMuon rule's elementwise math as foreach kernels,
    Newton-Schulz once per shape on the stacked matrices of that shape
    (batched products).

    Differs from `keras.optimizers.Muon` (Keras has no AdaMuon): no
    second moment of the orthogonalised update, a plain momentum, and
    Keras's Muon defaults (see :class:`Muon`).

    Args:
        {{learning_rate}}
        weight_decay: Float >= 0, decoupled decay of both rules.
            Defaults to `0.0`.
        momentum: Float in [0, 1]. Defaults to `0.95`.
        nesterov: Bool. Defaults to `False`.
        ns_steps: Integer >= 1. Defaults to `5`.
        ns_coefficients: As :class:`Muon`'s. Defaults to `"quintic"`.
        epsilon: Float >= 0. Defaults to `1e-7`.
        adjust_lr_fn: `"match_rms_adamw"`, `"rms_to_rms"`, `"rsqrt_in"` or
            None. Defaults to `"match_rms_adamw"`.
        beta_1: Float in [0, 1), the fallback AdamW's. Defaults to `0.9`.
        beta_2: Float in [0, 1), the AdaMuon second moment's and the
            fallback's. Defaults to `0.95`.
        fallback_learning_rate_scale: Float >= 0. Defaults to `1.0`.
        ns_dtype: `"bfloat16"` or `"float32"`. Defaults to `"bfloat16"`.
        exclude_layers: List of regexes routed to the fallback.
            Defaults to `None`.
        {{base}}

    References:
        - Si et al., 2025, "AdaMuon: Adaptive Muon Optimizer"
          (https://arxiv.org/abs/2507.11005).
        - timm 1.0.31, `timm/optim/muon.py`.
    """

    _hyperparameters = (
        "weight_decay", "momentum", "nesterov", "ns_steps",
        "ns_coefficients", "epsilon", "adjust_lr_fn", "beta_1", "beta_2",
        "fallback_learning_rate_scale", "ns_dtype", "exclude_layers",
    )
    weight_decay_in_update = True

    def __init__(
        self,
        learning_rate=0.02,
        weight_decay=0.0,
        momentum=0.95,
        nesterov=False,
        ns_steps=5,
        ns_coefficients="quintic",
        epsilon=1e-7,
        adjust_lr_fn="match_rms_adamw",
        beta_1=0.9,
        beta_2=0.95,
        fallback_learning_rate_scale=1.0,
        ns_dtype="bfloat16",
        exclude_layers=None,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate,
                         weight_decay=weight_decay,
                         decoupled_weight_decay=True, **kwargs)
        self.momentum = validation.check_real("momentum", momentum,
                                              low=0.0, high=1.0)
        self.nesterov = validation.check_bool("nesterov", nesterov)
        ns_steps = validation.check_int("ns_steps", ns_steps, 1)
        self.epsilon = validation.check_real("epsilon", epsilon, low=0.0)
        if adjust_lr_fn not in _ADJUST_LR_FNS:
            raise ValueError(
                "Argument `adjust_lr_fn` must be None, 'match_rms_adamw', "
                "'rms_to_rms' or 'rsqrt_in'. "
                f"Received: adjust_lr_fn={adjust_lr_fn!r}")
        self.adjust_lr_fn = adjust_lr_fn
        self.beta_1 = validation.check_real("beta_1", beta_1, low=0.0,
                                            high=1.0, high_open=True)
        self.beta_2 = validation.check_real("beta_2", beta_2, low=0.0,
                                            high=1.0, high_open=True)
        self.fallback_learning_rate_scale = validation.check_real(
            "fallback_learning_rate_scale", fallback_learning_rate_scale,
            low=0.0)
        self._init_routing(ns_coefficients, ns_steps, ns_dtype,
                           exclude_layers)

    matrix_rule = "adamuon"

    def _matrix_suitable(self, torch_shape):
        return suitable_for_muon(torch_shape)

    def _slot_specs_for(self, variable, rule):
        if rule == "adamuon":
            return [SlotSpec("momentum_buffer"), SlotSpec("exp_avg_sq")]
        return [SlotSpec("exp_avg"), SlotSpec("exp_avg_sq")]

    def _update(self, param, grad, state, lr, index):
        dtype = grad.dtype
        if self._decay_allowed[first_index(index)] and self.weight_decay:
            decay_lr = lr if self._rule(index) == "adamuon" else \
                lr * self.fallback_learning_rate_scale
            param = param * (1.0 - decay_lr * self._weight_decay_value(dtype))
        return super()._update(param, grad, state, lr, index)

    def _matrix_update(self, param, grad, state, lr, index):
        dtype = grad.dtype
        mu, eps, beta_2 = self.momentum, self.epsilon, self.beta_2
        buf = state["momentum_buffer"]
        buf = buf + (1.0 - mu) * (grad - buf)
        update = grad + mu * (buf - grad) if self.nesterov else buf
        # (on the torch fast path ``index`` is a group's tuple of indices:
        # one view per tensor, Newton-Schulz batched over equal shapes)
        layouts = self._layouts_at(index)
        views = [layout.matrix for layout in layouts]
        ortho = self._math.per_matrix(self._newton_schulz, update,
                                      self._views_argument(views, index))
        exp_avg_sq = state["exp_avg_sq"] * beta_2 + (1.0 - beta_2) * (
            ortho * ortho)
        if self.adjust_lr_fn == "match_rms_adamw":
            adaptive = ortho / (self._math.sqrt(exp_avg_sq) + eps)
            adaptive = adaptive / (self._math.norm(adaptive) + eps)
        else:
            step = self._step(dtype)
            bias_2 = ops.cast(one_minus_power(beta_2, step), dtype)
            adaptive = ortho / (self._math.sqrt(exp_avg_sq / bias_2) + eps)
        param = self._scaled(param, lr, adaptive, [
            self._lr_ratio(view.shape) for view in views])
        return param, {"momentum_buffer": buf, "exp_avg_sq": exp_avg_sq}

    def _lr_ratio(self, matrix_shape):
        rows, cols = matrix_shape
        if self.adjust_lr_fn == "match_rms_adamw":
            return 0.2 * math.sqrt(rows * cols)
        return {None: 1.0, "rms_to_rms": math.sqrt(rows / cols),
                "rsqrt_in": cols ** -0.5}[self.adjust_lr_fn]

    def _newton_schulz(self, matrix):
        """Newton-Schulz of ``matrix`` (the torch tensor as ``(m, n)``, or
        a stack of them) in ``ns_dtype``, cast back to its dtype."""
        return ops.cast(_matrix.newton_schulz(
            matrix, self._ns_schedule, self.epsilon, self.ns_dtype),
            matrix.dtype)

    def _adamw_update(self, param, grad, state, lr, index):
        """timm's AdamW (NAdamW with `nesterov`) fallback."""
        dtype = grad.dtype
        step = self._step(dtype)
        lr = lr * self.fallback_learning_rate_scale
        beta_1, beta_2 = self.beta_1, self.beta_2
        exp_avg = state["exp_avg"] + (1.0 - beta_1) * (grad - state["exp_avg"])
        exp_avg_sq = beta_2 * state["exp_avg_sq"] + (1.0 - beta_2) * grad * grad
        numerator = exp_avg + (1.0 - beta_1) * (grad - exp_avg) \
            if self.nesterov else exp_avg
        bias_1 = one_minus_power(beta_1, step)
        bias_2_sqrt = ops.sqrt(one_minus_power(beta_2, step))
        step_size = ops.cast(lr, step.dtype) / bias_1
        denom = (self._math.sqrt(exp_avg_sq) / ops.cast(bias_2_sqrt, dtype)
                 + self.epsilon)
        param = param - ops.cast(step_size, dtype) * (numerator / denom)
        return param, {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
