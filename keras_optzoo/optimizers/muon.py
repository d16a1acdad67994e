"""Muon, as torch.optim.Muon, with torch-exact AdamW for the other variables."""

import math
import re
import warnings

from keras_optzoo.optimizers import _matrix
from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers._matrix_routed import MatrixRouted
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import first_index
from keras_optzoo.registry import register_optimizer

_ADJUST_LR_FNS = (None, "original", "match_rms_adamw")


@register_optimizer("muon", "Muon for matrices, AdamW for the rest "
                    "(torch.optim.Muon + torch.optim.AdamW)")
class Muon(MatrixRouted):
    r"""Muon, as `torch.optim.Muon` (torch 2.13), with AdamW for the
    variables Muon does not take.

    For a 2-D variable ("muon" rule), with $\mu$ = `momentum`, $\gamma$ =
    `learning_rate`, $\lambda$ = `weight_decay`:

    $$B_t = \mu B_{t-1} + (1-\mu) g_t,\qquad
      \tilde B_t = \begin{cases} g_t + \mu (B_t - g_t) & \text{nesterov}\\
      B_t & \text{otherwise}\end{cases}$$
    $$O_t = \mathrm{NS}^{(a,b,c)}_k(\tilde B_t),\qquad
      \theta_t = \theta_{t-1}(1-\gamma\lambda) - \gamma\,s\,O_t$$

    (torch's buffer is a `lerp`, so $(1-\mu)$ scales the gradient, unlike
    the $\mu B + g$ of its docstring). $\mathrm{NS}$ runs `ns_steps`
    quintic Newton-Schulz iterations $A = XX^\top$,
    $X \leftarrow aX + (bA + cA^2)X$ (with a schedule, step $i$'s
    $(a_i, b_i, c_i)$) on $X = \tilde B/\max(\|\tilde B\|_F,
    \epsilon)$ (transposed while it has more rows than columns), in
    `ns_dtype`. $s$ is `adjust_lr_fn` of the variable's shape $(A, B)$:
    `None`/`"original"` $\sqrt{\max(1, A/B)}$, `"match_rms_adamw"`
    $0.2\sqrt{\max(A, B)}$, where $(A, B)$ is the shape torch would see,
    read through the layout rule (`keras_optzoo.layout`): a Dense kernel
    `(in, out)` is torch's Linear weight `(out, in)`, so a recipe ported
    from torch gets torch's learning rate (Newton-Schulz commutes with the
    transpose); a `MultiHeadAttention` kernel `(hidden, heads, head_dim)`
    is the matrix `(heads*head_dim, hidden)`; other variables as stored.

    Every other variable ("adamw" rule) is updated by `torch.optim.AdamW`
    (see :class:`AdamW`) with the `adamw_*` hyperparameters, exactly as a
    second torch.optim.AdamW (param group) with torch's AdamW defaults
    would: variables whose torch tensor is not 2-D (biases, norms,
    scalars, and convolution kernels, which torch's Muon refuses: they are
    *not* flattened as the Muon authors' code does), variables whose path
    contains "embedding" (when `exclude_embeddings`) and variables whose
    path matches a regex of `exclude_layers`. The rule is decided once per
    variable in `build`, from its path and shape.

    `ns_dtype="bfloat16"` runs the iteration in bfloat16 as torch does on
    CPU: every tensor torch materialises (normalised input, Gram matrices,
    `addmm` results) is rounded to bfloat16 and each product is accumulated
    in float32 from those bfloat16 values. Accumulation order differs
    between backends and torch, so results agree with torch's bfloat16 run
    to bfloat16 precision: measured 3e-4..5e-4 relative over 60 steps, 8x
    below torch's own bfloat16-vs-float32 difference (3.9e-3; checked in
    tests/test_muon.py). On the torch backend, where the hardware
    multiplies bfloat16 matrices (a CUDA GPU; a CPU with AVX512-BF16 or AMX,
    for matrices with both sides >= 64) the iteration runs on torch's own
    bfloat16 kernels instead, the same operations as torch's: the same
    bits as `torch.optim.Muon`'s Newton-Schulz, and 2.5x faster than the
    float32 emulation at 1e6 parameters on such a CPU.
    `ns_dtype="float32"` runs it in float32 (float64
    for float64 variables) and equals torch's algorithm run in that dtype
    to float32 rounding.

    On the torch backend the multi-tensor fast path runs it: the AdamW
    variables and the momentum as foreach kernels, Newton-Schulz once per
    shape on the stacked matrices of that shape (batched products).

    Differs from `keras.optimizers.Muon`: Keras's momentum is
    $B = \mu B + g$ (torch: a lerp), its Newton-Schulz runs in the
    variable's dtype and normalises by $\|X\| + 10^{-7}$, its default
    learning-rate adjustment is $0.2\sqrt{\max(A, B)}$ (`rms_rate`), its
    weight decay defaults to 0.004 for both rules, and its AdamW adds ε to
    the uncorrected $\sqrt{v}$ (ε-hat, ε = 1e-7) and uses
    `adam_lr_ratio`; with defaults it lands ≈3e-2 away from torch's Muon.

    Args:
        {{learning_rate}}
        weight_decay: Float >= 0, Muon's decoupled decay
            $\theta \leftarrow \theta(1-\gamma\lambda)$. Variables excluded
            with `exclude_from_weight_decay()` get none (in either rule).
            Defaults to `0.1`.
        momentum: Float >= 0. Defaults to `0.95`.
        nesterov: Bool. Defaults to `True`.
        ns_coefficients: The Newton-Schulz polynomial: three floats
            $(a, b, c)$ for every step (torch's form); a list of triples,
            one per step (a schedule); or the name of one of timm 1.0.31's
            schedules: `"original"` (torch's triple), `"quintic"` (five
            triples, modded-nanogpt), `"polar_express"` or
            `"polar_express_safer"` (eight each, Polar Express). As timm
            resolves them, a schedule longer than `ns_steps` is truncated
            and a shorter one repeats its last triple. A name is saved as
            the name by `get_config`. Defaults to
            `(3.4445, -4.775, 2.0315)`.
        epsilon: Float >= 0, the floor of the Frobenius norm in the
            normalisation. Defaults to `1e-7`.
        ns_steps: Integer in [0, 100), the Newton-Schulz iterations.
            Defaults to `5`.
        adjust_lr_fn: None, `"original"` or `"match_rms_adamw"`.
            Defaults to `None` ("original").
        ns_dtype: `"bfloat16"` (torch's) or `"float32"`.
            Defaults to `"bfloat16"`.
        exclude_embeddings: Bool. Variables whose path contains
            "embedding" use AdamW. Defaults to `True`.
        exclude_layers: List of regexes; variables whose path matches one
            use AdamW. Defaults to `None`.
        adamw_learning_rate: None (the AdamW rule uses `learning_rate`,
            schedules and changes included) or a float / schedule of its
            own. `learning_rate_scale` (ReduceLROnPlateau) scales both.
            Defaults to `None`.
        adamw_beta_1: Float in [0, 1). Defaults to `0.9`.
        adamw_beta_2: Float in [0, 1). Defaults to `0.999`.
        adamw_epsilon: Float >= 0. Defaults to `1e-8`.
        adamw_weight_decay: Float >= 0, AdamW's decoupled decay (torch
            AdamW's default). Defaults to `1e-2`.
        {{base}}

    References:
        - Jordan et al., 2024, "Muon: An optimizer for hidden layers in
          neural networks" (https://kellerjordan.github.io/posts/muon/,
          https://github.com/KellerJordan/Muon).
        - Liu et al., 2025, "Muon is Scalable for LLM Training"
          (https://arxiv.org/abs/2502.16982), for `"match_rms_adamw"`.
        - torch.optim.Muon (torch 2.13), `torch/optim/_muon.py`.
    """

    _hyperparameters = (
        "weight_decay", "momentum", "nesterov", "ns_coefficients", "epsilon",
        "ns_steps", "adjust_lr_fn", "ns_dtype", "exclude_embeddings",
        "exclude_layers", "adamw_learning_rate", "adamw_beta_1",
        "adamw_beta_2", "adamw_epsilon", "adamw_weight_decay", "maximize",
    )
    #: each rule (Muon's, AdamW's) applies its own decay in _update
    weight_decay_in_update = True

    def __init__(
        self,
        learning_rate=1e-3,
        weight_decay=0.1,
        momentum=0.95,
        nesterov=True,
        ns_coefficients=(3.4445, -4.775, 2.0315),
        epsilon=1e-7,
        ns_steps=5,
        adjust_lr_fn=None,
        ns_dtype="bfloat16",
        exclude_embeddings=True,
        exclude_layers=None,
        adamw_learning_rate=None,
        adamw_beta_1=0.9,
        adamw_beta_2=0.999,
        adamw_epsilon=1e-8,
        adamw_weight_decay=1e-2,
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
        self.momentum = validation.check_real("momentum", momentum, low=0.0)
        self.nesterov = validation.check_bool("nesterov", nesterov)
        self.epsilon = validation.check_real("epsilon", epsilon, low=0.0)
        ns_steps = validation.check_int("ns_steps", ns_steps, low=0, high=100)
        if adjust_lr_fn not in _ADJUST_LR_FNS:
            raise ValueError(
                "Argument `adjust_lr_fn` must be None, 'original' or "
                f"'match_rms_adamw'. Received: adjust_lr_fn={adjust_lr_fn!r}")
        self.adjust_lr_fn = adjust_lr_fn
        self._init_routing(ns_coefficients, ns_steps, ns_dtype,
                           exclude_layers, exclude_embeddings)
        self._init_adamw(adamw_learning_rate, adamw_beta_1, adamw_beta_2,
                         adamw_epsilon, adamw_weight_decay)

    # ---------------------------------------------------------------- rules
    matrix_rule = "muon"

    def _matrix_suitable(self, torch_shape):
        return len(torch_shape) == 2

    def _slot_specs_for(self, variable, rule):
        if rule == "muon":
            return [SlotSpec("momentum_buffer")]
        return [SlotSpec("exp_avg"), SlotSpec("exp_avg_sq")]

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._warn_about_routing(var_list)

    def _warn_about_routing(self, var_list):
        """Warns where the routing is probably not what was meant: no
        variable gets Muon's rule, or an `exclude_layers` pattern matches
        no variable (a typo would otherwise train silently with Muon)."""
        if var_list and "muon" not in self._rules:
            warnings.warn(
                f"Muon: none of the {len(var_list)} variables gets Muon's "
                "orthogonalised update (it applies to 2-D variables not "
                "excluded by `exclude_embeddings` or `exclude_layers`), so "
                "every variable trains with AdamW and the `adamw_*` "
                "hyperparameters. Shapes: "
                f"{[tuple(v.shape) for v in var_list]}.", stacklevel=2)
        paths = [getattr(v, "path", None) or v.name for v in var_list]
        for pattern in self.exclude_layers:
            if not any(re.search(pattern, p) for p in paths):
                warnings.warn(
                    f"Muon: `exclude_layers` pattern {pattern!r} matches no "
                    "variable (it is searched with `re.search` in "
                    f"`variable.path`). Variable paths: {paths}.",
                    stacklevel=2)

    # --------------------------------------------------------------- update
    def _matrix_update(self, param, grad, state, lr, index):
        dtype = grad.dtype
        mu = self.momentum
        buf = state["momentum_buffer"]
        buf = buf + (1.0 - mu) * (grad - buf)
        update = grad + mu * (buf - grad) if self.nesterov else buf
        # (on the torch fast path ``index`` is a group's tuple of indices:
        # one layout per tensor, Newton-Schulz batched over equal shapes)
        layouts = self._layouts_at(index)
        # Newton-Schulz commutes with the transpose: a Dense kernel (or an
        # identity layout) is taken as stored, without a copy
        views = [None if layout.kind in ("dense", "identity") else layout
                 for layout in layouts]
        update = self._math.per_matrix(
            self._newton_schulz, update, self._views_argument(views, index))
        update = self._math.cast(update, dtype)
        if self._decay_allowed[first_index(index)] and self.weight_decay:
            param = param * (1.0 - lr * self._weight_decay_value(dtype))
        param = self._scaled(param, lr, update, [
            self._lr_ratio(layout.torch_shape) for layout in layouts])
        return param, {"momentum_buffer": buf}

    def _lr_ratio(self, torch_shape):
        # torch's `_adjust_lr` reads (A, B) from the torch tensor's shape
        # (a Linear weight's (out, in)): the layout rule gives it
        fan_out, fan_in = int(torch_shape[0]), int(torch_shape[1])
        if self.adjust_lr_fn == "match_rms_adamw":
            return 0.2 * math.sqrt(max(fan_out, fan_in))
        return math.sqrt(max(1.0, fan_out / fan_in))

    def _newton_schulz(self, x):
        """torch's ``_zeropower_via_newtonschulz`` in ``ns_dtype``, with
        the coefficient schedule (see ``_matrix.newton_schulz``)."""
        return _matrix.newton_schulz(x, self._ns_schedule, self.epsilon,
                                     self.ns_dtype)

