"""NorMuon, as pytorch-optimizer 4.1.0's ``NorMuon``."""

import math

from keras import ops

from keras_optzoo.fastpath import MATH
from keras_optzoo.optimizers import _matrix
from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers._matrix_routed import MatrixRouted
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import first_index
from keras_optzoo.registry import register_optimizer

_UPDATE_SCALES = ("preserve_norm", "match_rms")


@register_optimizer("normuon", "Muon with a per-row (neuron-wise) second "
                    "moment, AdamW for the rest (pytorch-optimizer NorMuon)")
class NorMuon(MatrixRouted):
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

    On the torch backend the multi-tensor fast path runs it: the AdamW
    variables and the momentum as foreach kernels, Newton-Schulz and the
    row normalisation once per shape on the stacked matrices of that shape
    (batched products).

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
        ns_steps = validation.check_int("ns_steps", ns_steps, 1)
        if update_scale not in _UPDATE_SCALES:
            raise ValueError(
                "Argument `update_scale` must be 'preserve_norm' or "
                f"'match_rms'. Received: update_scale={update_scale!r}")
        self.update_scale = update_scale
        self.use_adjusted_lr = validation.check_bool("use_adjusted_lr",
                                                     use_adjusted_lr)
        self.epsilon = validation.check_real("epsilon", epsilon, low=0.0)
        self._init_routing(ns_coefficients, ns_steps, ns_dtype,
                           exclude_layers, exclude_embeddings)
        self._init_adamw(adamw_learning_rate, adamw_beta_1, adamw_beta_2,
                         adamw_epsilon, adamw_weight_decay)

    # ---------------------------------------------------------------- rules
    matrix_rule = "normuon"
    #: pytorch-optimizer's AdamW writes the second moment as a lerp
    _adamw_addcmul = False

    def _matrix_suitable(self, torch_shape):
        return len(torch_shape) >= 2

    def _slot_specs_for(self, variable, rule):
        if rule == "normuon":
            rows = self.layout_of(variable).torch_shape[0]
            return [SlotSpec("momentum_buffer"),
                    SlotSpec("second_momentum_buffer", shape=(rows, 1))]
        return [SlotSpec("exp_avg"), SlotSpec("exp_avg_sq")]

    # --------------------------------------------------------------- update
    def _lr_ratio(self, torch_shape):
        rows = int(torch_shape[0])
        cols = math.prod(int(d) for d in torch_shape[1:])
        if self.update_scale == "match_rms":
            return 1.0
        if self.use_adjusted_lr:
            return 0.2 * math.sqrt(max(rows, cols))
        return math.sqrt(max(1.0, rows / cols))

    def _matrix_update(self, param, grad, state, lr, index):
        dtype = grad.dtype
        mu = self.momentum
        buf = state["momentum_buffer"]
        buf = buf + (1.0 - mu) * (grad - buf)
        update = grad + mu * (buf - grad) if self.nesterov else buf
        # (on the torch fast path ``index`` is a group's tuple of indices:
        # one view per tensor, the matrix math batched over equal shapes)
        layouts = self._layouts_at(index)
        update, second = self._math.per_matrix(
            self._normalised_update,
            (update, state["second_momentum_buffer"]),
            (self._views_argument([la.matrix for la in layouts], index),
             None))
        if self._decay_allowed[first_index(index)] and self.weight_decay:
            param = param * (1.0 - lr * self._weight_decay_value(dtype))
        param = self._scaled(param, lr, update, [
            self._lr_ratio(layout.torch_shape) for layout in layouts])
        return param, {"momentum_buffer": buf,
                       "second_momentum_buffer": second}

    def _normalised_update(self, matrix, second):
        """Newton-Schulz of the momentum ``matrix`` (the torch tensor as
        ``(m, n)``, or a stack of them), the per-row second moment
        ``second`` (``(m, 1)``) updated from it, and the row-normalised,
        norm-rescaled update; returns ``(update, second)``."""
        dtype = matrix.dtype
        eps = self.epsilon
        ortho = ops.cast(
            _matrix.newton_schulz(matrix, self._ns_schedule,
                                  self._NS_EPSILON, self.ns_dtype), dtype)
        sq = ortho * ortho
        second = second + (1.0 - self.beta_2) * (
            MATH.mean(sq, axis=-1, keepdims=True) - second)
        normalised = ortho / (ops.sqrt(second) + eps)
        # per matrix (the last two axes: a stack is a batch)
        norm = ops.sqrt(ops.sum(normalised * normalised, axis=(-2, -1),
                                keepdims=True)) + eps
        if self.update_scale == "preserve_norm":
            # torch's update.norm() does not underflow (tiny gradients)
            target = _matrix.scaled_norm(ortho, axis=(-2, -1))
        else:
            rows, cols = int(matrix.shape[-2]), int(matrix.shape[-1])
            target = 0.2 * math.sqrt(float(rows * cols))
        return normalised * (target / norm), second

