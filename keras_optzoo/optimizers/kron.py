"""Kron (PSGD with a Kronecker-factored preconditioner), as timm 1.0.31's
``timm.optim.kron.Kron``."""

import math
import random as _python_random

import keras
import numpy as np
from keras import ops

from keras_optzoo.fastpath import MATH
from keras_optzoo.optimizers import _matrix
from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers.base import one_minus_power
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import ZooOptimizer
from keras_optzoo.registry import register_optimizer

_MEMORY_SAVE_MODES = (None, "one_diag", "smart_one_diag", "all_diag")
#: torch.finfo(torch.bfloat16).tiny, timm's guard against a zero norm
_TINY = 1.1754943508222875e-38
#: the chance of a balancing of the factors on an update step (timm's)
_BALANCE_PROBABILITY = 0.01


def safe_flatten_shape(shape, start_dim, end_dim):
    """timm's ``safe_flatten`` on a shape: axes ``start_dim..end_dim``
    merged into one; the shape unchanged where that range is empty."""
    ndim = len(shape)
    end = min(end_dim if end_dim >= 0 else ndim + end_dim, ndim - 1)
    if ndim <= start_dim or start_dim > end:
        return tuple(shape)
    merged = int(np.prod(shape[start_dim:end + 1]))
    return tuple(shape[:start_dim]) + (merged,) + tuple(shape[end + 1:])


def diagonal_axes(shape, max_size, min_ndim_triangular, memory_save_mode):
    """Per axis of ``shape``: True where timm's Kron keeps a diagonal
    factor, False for a triangular one (timm's ``_init_Q_exprs``)."""
    ndim = len(shape)
    if not ndim:
        return []
    if memory_save_mode is None:
        flags = [False] * ndim
    elif memory_save_mode == "all_diag":
        flags = [True] * ndim
    else:
        flags = [False] * ndim
        largest = int(np.argsort(shape)[::-1][0])
        ordered = sorted(shape)
        if memory_save_mode == "one_diag" or (
                ndim >= 2 and ordered[-1] > ordered[-2]):
            flags[largest] = True
    return [size == 1 or size > max_size or ndim < min_ndim_triangular
            or flag for size, flag in zip(shape, flags)]


# ------------------------------------------------------------------ probes
def _shr(x, k):
    """Logical right shift of int32 values (the bits as uint32)."""
    return ops.bitwise_and(ops.right_shift(x, k), (1 << (32 - k)) - 1)


def _mix(x):
    """A 32-bit integer hash (Wellons' "lowbias32") on int32 tensors,
    whose products wrap modulo 2**32 on every backend."""
    x = ops.bitwise_xor(x, _shr(x, 16))
    x = ops.multiply(x, ops.cast(0x7FEB352D, "int32"))
    x = ops.bitwise_xor(x, _shr(x, 15))
    x = ops.multiply(x, ops.cast(0x846CA68B - (1 << 32), "int32"))
    return ops.bitwise_xor(x, _shr(x, 16))


def _unit(h):
    """(h's top 24 bits + 1/2) / 2**24: a float32 in (0, 1)."""
    return (ops.cast(_shr(h, 8), "float32") + 0.5) * (1.0 / (1 << 24))


def hash_uniform(seed, count, offset=0):
    """``count`` uniforms in (0, 1) from the 2-vector ``seed`` (int32),
    counters ``offset .. offset + count - 1``."""
    key = _mix(ops.bitwise_xor(_mix(seed[0]), seed[1]))
    counter = ops.arange(offset, offset + count, dtype="int32")
    return _unit(_mix(ops.bitwise_xor(_mix(counter), key)))


def hash_normal(seed, shape):
    """Standard normal draws (Box-Muller on :func:`hash_uniform`'s
    counters 2k, 2k + 1), shaped ``shape`` in row-major order."""
    n = max(1, math.prod(shape))
    u = ops.reshape(hash_uniform(seed, 2 * n), (n, 2))
    radius = ops.sqrt(-2.0 * ops.log(u[:, 0]))
    z = radius * ops.cos((2.0 * math.pi) * u[:, 1])
    return ops.reshape(z[:math.prod(shape)], shape)


# ------------------------------------------------------------- the factors
class _Plan:
    """How one variable is preconditioned, from its torch shape."""

    def __init__(self, torch_shape, opt):
        self.torch_shape = tuple(torch_shape)
        self.shape = (safe_flatten_shape(self.torch_shape,
                                         opt.flatten_start_dim,
                                         opt.flatten_end_dim)
                      if opt.flatten else self.torch_shape)
        if len(self.shape) > 13:
            raise ValueError(
                f"Kron supports variables of at most 13 axes (timm's limit). "
                f"Received: a variable of shape {self.shape}")
        self.diagonal = diagonal_axes(self.shape, opt.max_size_triangular,
                                      opt.min_ndim_triangular,
                                      opt.memory_save_mode)
        ndim = len(self.shape)
        self.scale = opt.precond_init_scale ** (1.0 / ndim) if ndim \
            else opt.precond_init_scale

    def factor_shapes(self):
        if not self.shape:
            return [()]
        return [(d,) if diag else (d, d)
                for d, diag in zip(self.shape, self.diagonal)]


def _apply_factors(x, factors, transpose=False):
    """Each axis ``i`` of ``x`` multiplied by factor ``i``: ``Q_i x``
    (``Q_i^T x`` with ``transpose``) along it, or elementwise by a
    diagonal factor."""
    if len(x.shape) == 0:
        return x * factors[0]
    for q in factors:
        if len(q.shape) == 1:
            x = ops.moveaxis(x, 0, -1) * q
        else:
            x = ops.tensordot(x, q, axes=([0], [0 if transpose else 1]))
    return x


def _solve_factors(v, factors):
    """``v`` with each axis multiplied by ``Q_i^{-T}`` (timm's ``conjB``:
    ``V`` times each triangular factor's inverse from the right along its
    axis), by triangular solves; a diagonal factor divides."""
    if len(v.shape) == 0:
        return v / factors[0]
    for q in factors:
        if len(q.shape) == 1:
            v = ops.moveaxis(v, 0, -1) / q
        else:
            d = v.shape[0]
            rest = v.shape[1:]
            y = ops.solve_triangular(ops.transpose(q),
                                     ops.reshape(v, (d, -1)), lower=True)
            v = ops.moveaxis(ops.reshape(y, (d,) + tuple(rest)), 0, -1)
    return v


def _axis_statistic(x, axis, diagonal):
    """timm's ``exprGs`` terms: the Gram matrix of the mode-``axis``
    unfolding, or its diagonal for a diagonal factor."""
    if len(x.shape) == 0:
        return x * x
    if diagonal:
        others = tuple(i for i in range(len(x.shape)) if i != axis)
        return ops.sum(x * x, axis=others) if others else x * x
    return _matrix.mode_gram(x, axis)


def norm_lower_bound(a):
    """timm's cheap lower bound of the spectral norm of the square ``a``
    (one power-iteration step from its largest row or column), with its
    branches as ``where`` (0 for a zero matrix)."""
    max_abs = ops.max(ops.abs(a))
    safe = ops.where(max_abs > 0, max_abs, ops.ones_like(max_abs))
    an = a / safe
    aa = an * an
    col_sums = ops.sum(aa, axis=0)
    row_sums = ops.sum(aa, axis=1)
    i = ops.argmax(col_sums)
    j = ops.argmax(row_sums)
    # value0 > value1: x = A[:, i] @ A, |(x/|x|) @ A^T|
    x0 = ops.matmul(ops.take(an, i, axis=1), an)
    y0 = ops.matmul(an, x0 / ops.norm(x0))
    # else: x = A @ A[j], |A^T @ (x/|x|)|
    x1 = ops.matmul(an, ops.take(an, j, axis=0))
    y1 = ops.matmul(x1 / ops.norm(x1), an)
    bound = ops.where(ops.max(col_sums) > ops.max(row_sums),
                      ops.norm(y0), ops.norm(y1))
    return ops.where(max_abs > 0, max_abs * bound, max_abs)


def balance(factors):
    """timm's ``_balance_Q``: every factor rescaled so that its largest
    magnitude is the geometric mean of all of them."""
    norms = ops.stack([ops.max(ops.abs(q)) for q in factors])
    mean = ops.power(ops.prod(norms), 1.0 / len(factors))
    scale = mean / norms
    return [q * scale[k] for k, q in enumerate(factors)]


def update_factors(factors, diagonal, g, v, precond_lr):
    """One step of timm's preconditioner fit on the pair ``(g, v)``."""
    a = _apply_factors(g, factors)
    conj_b = _solve_factors(v, factors)
    out = []
    for axis, (q, diag) in enumerate(zip(factors, diagonal)):
        term1 = _axis_statistic(a, axis, diag)
        term2 = _axis_statistic(conj_b, axis, diag)
        tmp = (term1 - term2) * precond_lr
        if len(q.shape) < 2:
            tmp = tmp * q
            tmp = tmp / (ops.max(ops.abs(term1 + term2)) + _TINY)
        else:
            tmp = ops.triu(tmp)
            tmp = tmp / (norm_lower_bound(term1 + term2) + _TINY)
            tmp = ops.matmul(tmp, q)
        out.append(q - tmp)
    return out


def precondition(factors, g):
    """``P g`` with ``P = Q^T Q`` along every axis."""
    return _apply_factors(_apply_factors(g, factors), factors,
                          transpose=True)


def update_probability(n):
    """timm's ``precond_update_prob_schedule`` at step count ``n`` (float32
    tensor): 1 for 500 steps, then ``exp(-0.001 (n - 500))``, at least
    0.03."""
    prob = ops.exp(ops.cast(-0.001, "float32") * (n - 500.0))
    return ops.clip(prob, 0.03, 1.0)


@register_optimizer("kron", "PSGD Kron, a Kronecker-factored "
                    "preconditioner fitted by random probes (timm)")
class Kron(ZooOptimizer):
    r"""PSGD Kron, as `timm.optim.kron.Kron` (timm 1.0.31).

    Preconditioned SGD with momentum whose preconditioner
    $P = Q^\top Q$ is a Kronecker product of one factor $Q_i$ per axis of
    the gradient, read as the tensor torch holds (`keras_optzoo.layout`;
    a Dense kernel (in, out) as torch's (out, in)): upper-triangular
    $d_i\times d_i$, or diagonal for an axis larger than
    `max_size_triangular`, of size 1, of a variable with fewer than
    `min_ndim_triangular` axes, or as `memory_save_mode` picks. With
    $\beta$ = `momentum`, step $t$:

    $$m \leftarrow \beta m + (1-\beta) g,\qquad
      \hat m = m / (1-\beta^t)$$

    On an update step (below), with a probe $V \sim \mathcal N(0, I)$,
    $A = Q\hat m$ (every factor applied along its axis; $g$ instead of
    $\hat m$ when `momentum_into_precond_update=False`) and
    $B = Q^{-\top} V$, every factor takes one step of the fit
    $P \approx (\hat m\hat m^\top)^{-1/2}$:

    $$Q_i \leftarrow Q_i - \eta\,
      \frac{\mathrm{triu}(A_{(i)}A_{(i)}^\top - B_{(i)}B_{(i)}^\top)}
           {\lVert A_{(i)}A_{(i)}^\top + B_{(i)}B_{(i)}^\top\rVert_{lb}
            + \tau}\, Q_i$$

    ($X_{(i)}$ the mode-$i$ unfolding, $\lVert\cdot\rVert_{lb}$ timm's
    one-step lower bound of the spectral norm, $\tau$ bfloat16's smallest
    normal number, $\eta$ = `precond_lr`; a diagonal factor uses the
    diagonals, the largest magnitude as the norm and multiplies
    elementwise). Then

    $$u = P\hat m,\quad u \leftarrow u \min\!\left(1,
      \frac{1.1}{\mathrm{RMS}(u) + 10^{-8}}\right),\quad
      \theta \leftarrow \theta - \gamma (u + \lambda\theta)$$

    or $\theta \leftarrow \theta(1-\gamma\lambda) - \gamma u$ with
    `decoupled_decay` (with `corrected_weight_decay`,
    $\gamma^2/\gamma_{max}$ replaces $\gamma$ in the decay, $\gamma_{max}$
    the learning rate given at construction).

    When the preconditioner is updated (timm's rule, deterministic): a
    per-variable counter $c$ is incremented every step, and the factors are
    updated, and $c$ reset to 0, when $c \ge 1/p$, where $p$ is
    `preconditioner_update_probability` or, when None, timm's schedule
    $p(n) = \mathrm{clip}(e^{-0.001(n - 500)}, 0.03, 1)$ of the number $n$
    of steps taken before this one. On an update step of a variable with
    at least 2 axes the factors are first balanced (each rescaled so that
    its largest magnitude is the geometric mean of all of them) with
    probability 0.01, as timm does.

    Randomness: every step draws, per variable in order, one seed from a
    `keras.random.SeedGenerator(seed)` whose state is an optimizer
    variable (saved and restored with the optimizer: a resumed run draws
    what the uninterrupted run would). From that seed a counter-based
    integer hash gives the probe $V$ (Box-Muller on 24-bit uniforms, in
    the variable's Keras layout, then mapped to torch's) and the uniform
    that decides the balancing (balance when it is below 0.01). The hash
    is plain `keras.ops` integer arithmetic, so a seed gives the same
    probes on every backend, eager or compiled (Keras's backend random
    ops draw different numbers on TF eager and under XLA for the same
    seed). timm draws its probes with `torch.randn` and its coin from a
    `random.Random(1337)`, so equal trajectories need equal draws: the
    tests feed timm the draws of this optimizer (tests/spec_db/kron.py),
    or feed both the same ones through `probe_fn` and `balance_fn`.

    Compiled steps: the preconditioner update (probe, factor fit, the
    balancing as a `where`) is one branch of `ops.cond` on the traced
    decision, so steps that do not update skip the matrix work and the
    decision never retraces; in eager steps (and on the torch backend)
    the branch is taken in Python (`_matrix.branch`). Half-precision variables are computed in float32 (the factors
    are stored in the variable's dtype, as timm's `precond_dtype=None`).

    Differs from `keras.optimizers.SGD` (Keras has no PSGD): the momentum
    is debiased and preconditioned by the fitted Kronecker factors, and
    the update's RMS is capped at 1.1.

    Args:
        {{learning_rate}}
        momentum: Float in [0, 1), $\beta$. Defaults to `0.9`.
        weight_decay: Float >= 0, $\lambda$ (added to the preconditioned
            update, or decoupled). Defaults to `0.0`.
        preconditioner_update_probability: Float in (0, 1] or None (timm's
            annealing schedule). Defaults to `None`.
        max_size_triangular: Integer >= 0; larger axes get a diagonal
            factor. Defaults to `2048`.
        min_ndim_triangular: Integer >= 0; variables with fewer axes get
            diagonal factors only. Defaults to `2`.
        memory_save_mode: None (triangular factors), `"one_diag"` (the
            largest axis diagonal), `"smart_one_diag"` (the largest axis
            diagonal when it is strictly the largest) or `"all_diag"`.
            Defaults to `None`.
        momentum_into_precond_update: Boolean, whether the factors are fit
            to the debiased momentum (else to the gradient). Defaults to
            `True`.
        precond_lr: Float >= 0, $\eta$. Defaults to `0.1`.
        precond_init_scale: Float > 0; the factors start at
            `precond_init_scale ** (1 / ndim)` times the identity.
            Defaults to `1.0`.
        mu_dtype: Must be None (the momentum in the variable's dtype);
            timm's other dtypes are not supported. Defaults to `None`.
        precond_dtype: Must be None (the factors in the variable's dtype).
            Defaults to `None`.
        decoupled_decay: Boolean, decoupled (AdamW-style) weight decay.
            Defaults to `False`.
        corrected_weight_decay: Boolean, with `decoupled_decay` the decay
            uses $\gamma^2/\gamma_{max}$. Defaults to `False`.
        flatten: Boolean, whether axes `flatten_start_dim` ..
            `flatten_end_dim` of the torch-layout tensor are merged before
            preconditioning. Defaults to `False`.
        flatten_start_dim: Integer >= 0. Defaults to `2`.
        flatten_end_dim: Integer. Defaults to `-1`.
        stochastic_weight_decay: Must be False (timm's random modulation
            of the decay is not supported). Defaults to `False`.
        seed: Integer or None, the seed of the probes and of the balancing
            coin (None: drawn from Python's `random`, which
            `keras.utils.set_random_seed` seeds). Defaults to `None`.
        probe_fn: None or a callable `probe_fn(step, variable_index,
            shape) -> tensor` returning the probe $V$ of a variable (in its
            Keras layout, shape `shape`) at `step` (the 1-based step, an
            int32 scalar tensor) to use instead of the seeded draw; called
            inside the compiled step (use `keras.ops`). For tests; not
            saved in the config. Defaults to `None`.
        balance_fn: None or a callable `balance_fn(step, variable_index)
            -> scalar` returning the uniform in [0, 1) that decides the
            balancing (below 0.01 balances), instead of the seeded draw.
            For tests; not saved in the config. Defaults to `None`.
        {{maximize}}
        {{base}}

    References:
        - Li, 2015-2024, "Preconditioned stochastic gradient descent"
          (https://arxiv.org/abs/1512.04202) and
          https://github.com/lixilinx/psgd_torch.
        - timm 1.0.31, `timm/optim/kron.py` (after Evan Walters'
          kron_torch).
    """

    _hyperparameters = (
        "momentum", "weight_decay", "preconditioner_update_probability",
        "max_size_triangular", "min_ndim_triangular", "memory_save_mode",
        "momentum_into_precond_update", "precond_lr", "precond_init_scale",
        "mu_dtype", "precond_dtype", "decoupled_decay",
        "corrected_weight_decay", "flatten", "flatten_start_dim",
        "flatten_end_dim", "stochastic_weight_decay", "seed", "maximize")
    supports_multi_tensor = False
    weight_decay_in_update = True

    def __init__(
        self,
        learning_rate=0.001,
        momentum=0.9,
        weight_decay=0.0,
        preconditioner_update_probability=None,
        max_size_triangular=2048,
        min_ndim_triangular=2,
        memory_save_mode=None,
        momentum_into_precond_update=True,
        precond_lr=0.1,
        precond_init_scale=1.0,
        mu_dtype=None,
        precond_dtype=None,
        decoupled_decay=False,
        corrected_weight_decay=False,
        flatten=False,
        flatten_start_dim=2,
        flatten_end_dim=-1,
        stochastic_weight_decay=False,
        seed=None,
        probe_fn=None,
        balance_fn=None,
        maximize=False,
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            decoupled_weight_decay=bool(decoupled_decay),
            maximize=maximize,
            **kwargs,
        )
        self.momentum = validation.check_real(
            "momentum", momentum, low=0.0, high=1.0, high_open=True)
        prob = preconditioner_update_probability
        if prob is not None:
            prob = validation.check_real(
                "preconditioner_update_probability", prob, low=0.0,
                high=1.0, low_open=True)
        self.preconditioner_update_probability = prob
        self.max_size_triangular = validation.check_int(
            "max_size_triangular", max_size_triangular, 0)
        self.min_ndim_triangular = validation.check_int(
            "min_ndim_triangular", min_ndim_triangular, 0)
        if memory_save_mode not in _MEMORY_SAVE_MODES:
            raise ValueError(
                "Argument `memory_save_mode` must be one of None, "
                "'one_diag', 'smart_one_diag', 'all_diag'. Received: "
                f"memory_save_mode={memory_save_mode!r}")
        self.memory_save_mode = memory_save_mode
        for name, value in (
                ("momentum_into_precond_update", momentum_into_precond_update),
                ("decoupled_decay", decoupled_decay),
                ("corrected_weight_decay", corrected_weight_decay),
                ("flatten", flatten),
                ("stochastic_weight_decay", stochastic_weight_decay)):
            setattr(self, name, validation.check_bool(name, value))
        if self.stochastic_weight_decay:
            raise ValueError(
                "Argument `stochastic_weight_decay=True` is not supported "
                "(timm's random modulation of the weight decay). Received: "
                "stochastic_weight_decay=True")
        self.precond_lr = validation.check_real("precond_lr", precond_lr,
                                                low=0.0)
        self.precond_init_scale = validation.check_real(
            "precond_init_scale", precond_init_scale, low=0.0,
            low_open=True)
        for name, value in (("mu_dtype", mu_dtype),
                            ("precond_dtype", precond_dtype)):
            if value is not None:
                raise ValueError(
                    f"Argument `{name}` must be None (the variable's "
                    "dtype); other dtypes are not supported. Received: "
                    f"{name}={value!r}")
        self.mu_dtype = None
        self.precond_dtype = None
        self.flatten_start_dim = validation.check_int("flatten_start_dim",
                                            flatten_start_dim, 0)
        if isinstance(flatten_end_dim, bool) or not isinstance(
                flatten_end_dim, (int, np.integer)):
            raise ValueError("Argument `flatten_end_dim` must be an "
                             f"integer. Received: flatten_end_dim="
                             f"{flatten_end_dim!r}")
        self.flatten_end_dim = int(flatten_end_dim)
        if seed is None:
            seed = _python_random.randint(1, int(1e9))
        self.seed = validation.check_int("seed", seed, 0, 2 ** 31)
        for name, value in (("probe_fn", probe_fn),
                            ("balance_fn", balance_fn)):
            if value is not None and not callable(value):
                raise TypeError(f"Argument `{name}` must be None or a "
                                f"callable. Received: {name}={value!r}")
        self.probe_fn = probe_fn
        self.balance_fn = balance_fn
        if self.corrected_weight_decay:
            lr0 = validation.as_real(learning_rate)
            if not isinstance(lr0, float) or lr0 <= 0:
                raise ValueError(
                    "Argument `corrected_weight_decay=True` needs a "
                    "positive float `learning_rate` (the peak rate). "
                    f"Received: learning_rate={learning_rate!r}")
            self._max_lr = lr0
        else:
            self._max_lr = None

    # ------------------------------------------------------------- state
    def _plan(self, variable_or_index):
        return _Plan(self.layout_of(variable_or_index).torch_shape, self)

    def _slot_specs_for(self, variable, rule):
        plan = self._plan(variable)
        specs = [SlotSpec("momentum_buffer"),
                 SlotSpec("update_counter", scalar=True)]
        for i, shape in enumerate(plan.factor_shapes()):
            specs.append(SlotSpec(f"Q_{i}", initial_value=plan.scale,
                                  shape=shape))
        return specs

    def _make_slot(self, variable, index, spec):
        if spec.name.startswith("Q_") and len(spec.shape) == 2:
            return self.add_variable(
                shape=spec.shape,
                initializer=keras.initializers.Identity(
                    gain=spec.initial_value),
                dtype=variable.dtype, name=f"{spec.name}_{index}")
        return super()._make_slot(variable, index, spec)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        # A SeedGenerator whose state is an int32 optimizer variable (the
        # same saved dtype on every backend; Keras's own is uint32 on JAX,
        # int64 on TF): [seed, number of draws], saved and restored.
        self._seed_generator = keras.random.SeedGenerator(
            self.seed, name="kron_seed")
        self._seed_generator.state = self.add_variable(
            shape=(2,), dtype="int32", name="seed_generator_state",
            initializer=keras.initializers.Constant(
                np.array([self.seed, 0], "int32")))

    # ------------------------------------------------------------ update
    def _update(self, param, grad, state, lr, index):
        dtype = keras.backend.standardize_dtype(grad.dtype)
        cdt = "float64" if dtype == "float64" else "float32"
        layout = self.layout_of(index)
        plan = self._plan(index)
        step = self._step(dtype)
        n = ops.cast(step, "float32") - 1.0  # timm's state["step"] before

        # ---- the deterministic update rule (a per-variable counter)
        counter = state["update_counter"] + 1.0
        prob = self.preconditioner_update_probability
        if prob is None:
            threshold = 1.0 / update_probability(n)
        else:
            threshold = float(math.ceil(1.0 / prob))
        do_update = ops.greater_equal(ops.cast(counter, "float32"),
                                      threshold)
        new_counter = ops.where(do_update, ops.zeros_like(counter), counter)

        # ---- draws (one seed per variable per step, on every step)
        seed = ops.cast(self._seed_generator.next(), "int32")
        step_int = ops.cast(self.iterations + 1, "int32")

        # ---- momentum, debiased
        beta = self.momentum
        grad_c = ops.cast(grad, cdt)
        m = state["momentum_buffer"] * beta + grad * (1.0 - beta)
        m_c = ops.cast(m, cdt)
        debiased = m_c / ops.cast(one_minus_power(beta, step), cdt)

        def to_work(x):
            return ops.reshape(layout.to_torch(x), plan.shape)

        factors = [ops.cast(ops.convert_to_tensor(state[f"Q_{i}"]), cdt)
                   for i in range(len(plan.factor_shapes()))]
        deb_work = to_work(debiased)
        fit_target = deb_work if self.momentum_into_precond_update \
            else to_work(grad_c)
        keras_shape = tuple(param.shape)

        def refit():
            if self.probe_fn is not None:
                probe = ops.cast(self.probe_fn(step_int, index, keras_shape),
                                 cdt)
            else:
                probe = ops.cast(hash_normal(seed, keras_shape), cdt)
            if self.balance_fn is not None:
                coin = self.balance_fn(step_int, index)
            else:
                coin = hash_uniform(seed, 1, offset=2 * max(
                    1, math.prod(keras_shape)))[0]
            qs = list(factors)
            if len(plan.shape) > 1:
                balanced = balance(qs)
                flip = ops.less(ops.cast(coin, "float32"),
                                _BALANCE_PROBABILITY)
                qs = [ops.where(flip, b, q) for b, q in zip(balanced, qs)]
            return update_factors(qs, plan.diagonal if plan.shape else
                                  [True], fit_target, to_work(probe),
                                  self.precond_lr)

        def keep():
            return list(factors)

        factors = _matrix.branch(do_update, refit, keep)

        # ---- the preconditioned step
        u = precondition(factors, deb_work)
        u = ops.cast(layout.from_torch(ops.reshape(u, layout.torch_shape)),
                     cdt)
        rms = ops.sqrt(MATH.mean(u * u))
        u = u * ops.minimum(1.1 / (rms + 1e-8), 1.0)
        u = ops.cast(u, dtype)
        new_param = param
        if self._decay_mask[index]:
            wd = self._weight_decay_value(dtype)
            if self.decoupled_decay:
                scale = lr * lr / self._max_lr if self.corrected_weight_decay \
                    else lr
                new_param = new_param * (1.0 - scale * wd)
            else:
                u = u + param * wd
        new_param = new_param - u * lr

        new = {"momentum_buffer": m, "update_counter": new_counter}
        for i, q in enumerate(factors):
            new[f"Q_{i}"] = ops.cast(q, dtype)
        return new_param, new
