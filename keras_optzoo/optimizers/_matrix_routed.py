"""What Muon, NorMuon and AdaMuon share: a matrix rule for some variables,
an AdamW-style fallback for the rest, chosen per variable at build.

:class:`MatrixRouted` holds the routing (``exclude_layers`` regexes, the
optional embedding exclusion), the ``adamw_*`` hyperparameters of a torch
AdamW fallback, the Newton-Schulz arguments' checks and their ``get_config``
form, the per-variable decay mask and ``rules``. A subclass sets
``matrix_rule`` (its rule's name), implements ``_matrix_suitable(shape)`` on
the torch tensor's shape, ``_slot_specs_for`` and ``_matrix_update``; its
AdamW fallback is ``_adamw_update`` (the torch AdamW here, or its own).
"""

import re

from keras import ops

from keras_optzoo.optimizers import _matrix
from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers.base import ZooOptimizer
from keras_optzoo.optimizers.base import first_index
from keras_optzoo.optimizers.base import one_minus_power


def check_exclude_layers(exclude_layers):
    """``exclude_layers`` as a list of compiled-checked regex strings."""
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


class MatrixRouted(ZooOptimizer):
    """Base of the optimizers with a matrix rule and an AdamW fallback."""

    #: the name of the matrix rule in ``rules`` ("muon", "normuon", ...)
    matrix_rule = None

    def _init_routing(self, ns_coefficients, ns_steps, ns_dtype,
                      exclude_layers, exclude_embeddings=False):
        """Checks and stores the Newton-Schulz arguments (``ns_steps``
        already checked by the subclass, whose ranges differ) and the
        routing arguments."""
        self.ns_coefficients = _matrix.check_ns_coefficients(ns_coefficients)
        self.ns_steps = ns_steps
        self._ns_schedule = _matrix.ns_coefficient_schedule(
            self.ns_coefficients, self.ns_steps)
        self.ns_dtype = _matrix.check_ns_dtype(ns_dtype)
        self.exclude_embeddings = validation.check_bool(
            "exclude_embeddings", exclude_embeddings)
        self.exclude_layers = check_exclude_layers(exclude_layers)

    def _init_adamw(self, adamw_learning_rate, adamw_beta_1, adamw_beta_2,
                    adamw_epsilon, adamw_weight_decay):
        """The ``adamw_*`` hyperparameters of the torch AdamW fallback
        (``adamw_learning_rate=None``: the optimizer's learning rate)."""
        if adamw_learning_rate is not None:
            adamw_learning_rate = validation.check_real_or_schedule(
                "adamw_learning_rate",
                validation.as_real(adamw_learning_rate), low=0.0)
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
    def _matrix_suitable(self, torch_shape):
        raise NotImplementedError

    def _excluded(self, variable):
        path = getattr(variable, "path", None) or variable.name
        if self.exclude_embeddings and "embedding" in path.lower():
            return True
        return any(re.search(p, path) for p in self.exclude_layers)

    def _rule_for(self, variable):
        if self._excluded(variable) or not self._matrix_suitable(
                self.layout_of(variable).torch_shape):
            return "adamw"
        return self.matrix_rule

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._decay_allowed = self._decay_mask

    def _weight_decay_mask(self, var_list):
        # the base's mask also needs self.weight_decay != 0; each rule has
        # its own coefficient, so the mask holds only the exclusions (the
        # fast path groups variables by it)
        return [self._use_weight_decay(v) for v in var_list]

    def _layouts_at(self, index):
        """The layouts of the variable(s) at ``index``: one index, or on
        the torch fast path a group's tuple of indices."""
        indices = index if isinstance(index, tuple) else (index,)
        return [self.layout_of(i) for i in indices]

    @staticmethod
    def _views_argument(views, index):
        """``views`` (one per variable of ``index``) as
        ``MATH.per_matrix`` takes them: a tuple on the fast path, the one
        view on the per-variable path."""
        return tuple(views) if isinstance(index, tuple) else views[0]

    @staticmethod
    def _scaled(param, lr, update, ratios):
        """``param - lr·ratio·update`` with one shape-dependent ``ratio``
        per variable of the call: one float when they agree (always on the
        per-variable path), else a tuple of floats, one per tensor of a
        fast-path group (the learning rate then scales the product
        separately, within one float32 rounding of the per-variable
        path)."""
        if all(r == ratios[0] for r in ratios):
            return param - (lr * ratios[0]) * update
        return param - lr * (update * tuple(ratios))

    @property
    def rules(self):
        """The rule of each variable (the matrix rule or "adamw"), in build
        order."""
        return list(self._rules)

    # --------------------------------------------------------------- update
    def _update(self, param, grad, state, lr, index):
        if self._rule(index) == self.matrix_rule:
            return self._matrix_update(param, grad, state, lr, index)
        return self._adamw_update(param, grad, state, lr, index)

    def _adamw_lr(self, lr, dtype):
        if self.adamw_learning_rate is None:
            return lr
        return ops.cast(
            ops.multiply(
                ops.cast(self._hyper("adamw_learning_rate", "float32"),
                         "float32"),
                self._learning_rate_scale.value),
            dtype)

    #: the fallback's second moment as torch.optim.AdamW writes it
    #: (``mul_(b2).addcmul_(g, g, 1 - b2)``) or as a ``lerp_`` (False)
    _adamw_addcmul = True

    def _adamw_update(self, param, grad, state, lr, index):
        """torch.optim.AdamW with the ``adamw_*`` hyperparameters."""
        dtype = grad.dtype
        step = self._step(dtype)
        lr = self._adamw_lr(lr, dtype)
        if self._decay_allowed[first_index(index)] and \
                self.adamw_weight_decay:
            param = param * (1.0 - lr * self.adamw_weight_decay)
        beta_1, beta_2 = self.adamw_beta_1, self.adamw_beta_2
        exp_avg = state["exp_avg"] + (1.0 - beta_1) * (grad - state["exp_avg"])
        if self._adamw_addcmul:
            exp_avg_sq = (beta_2 * state["exp_avg_sq"]
                          + (1.0 - beta_2) * grad * grad)
        else:
            exp_avg_sq = state["exp_avg_sq"] + (1.0 - beta_2) * (
                grad * grad - state["exp_avg_sq"])
        bias_1 = one_minus_power(beta_1, step)
        bias_2_sqrt = ops.sqrt(one_minus_power(beta_2, step))
        step_size = ops.cast(lr, step.dtype) / bias_1
        denom = (self._math.sqrt(exp_avg_sq) / ops.cast(bias_2_sqrt, dtype)
                 + self.adamw_epsilon)
        param = param - ops.cast(step_size, dtype) * (exp_avg / denom)
        return param, {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
