"""L-BFGS, as torch.optim.LBFGS: a closure-driven optimizer.

L-BFGS evaluates the loss several times per step (once per iteration, more
with the line search), which Keras's one-gradient-per-batch ``fit`` loop
cannot provide. :class:`LBFGS` therefore takes the loss itself:
``optimizer.minimize(loss_fn, variables)`` runs one torch
``LBFGS.step(closure)``, and :func:`fit_lbfgs` trains a Keras model
full-batch with it.
"""

import keras
import numpy as np
from keras import ops

from keras_optzoo.optimizers import validation
from keras_optzoo.registry import default_name, register_optimizer

__all__ = ["LBFGS", "fit_lbfgs"]


@register_optimizer("lbfgs", "L-BFGS with an optional strong-Wolfe line "
                    "search, driven by a loss closure (torch.optim.LBFGS)")
class LBFGS(keras.optimizers.Optimizer):
    r"""L-BFGS, as `torch.optim.LBFGS` (torch 2.13).

    A closure-driven optimizer: **`fit` cannot drive it** (one gradient per
    batch); call :meth:`minimize` with a function returning the loss, or
    train a model full-batch with :func:`fit_lbfgs`:

    ```python
    opt = keras_optzoo.LBFGS(line_search_fn="strong_wolfe")
    model.compile(optimizer=opt, loss="mse")      # optional: saves opt
    losses = keras_optzoo.optimizers.lbfgs.fit_lbfgs(model, x, y, steps=10)
    # or, for any variables:
    loss = opt.minimize(lambda: my_loss(w, b), [w, b])
    ```

    One :meth:`minimize` call is one `torch.optim.LBFGS.step(closure)`: up
    to `max_iter` iterations and `max_eval` loss evaluations on the flat
    vector $x$ of all variables. Iteration $k$ computes the direction with
    the two-loop recursion over the stored pairs
    $s_i = t_i d_i$, $y_i = \nabla f_{i+1} - \nabla f_i$
    (a pair is kept only when $y_i^\top s_i > 10^{-10}$, at most
    `history_size` of them, oldest dropped first), $\rho_i = 1/y_i^\top s_i$:

    $$q \leftarrow -\nabla f_k;\quad
      \alpha_i = \rho_i s_i^\top q,\ q \leftarrow q - \alpha_i y_i
      \ (i = \text{newest} \dots \text{oldest})$$
    $$r \leftarrow \frac{s^\top y}{y^\top y}\,q;\quad
      \beta_i = \rho_i y_i^\top r,\ r \leftarrow r + (\alpha_i - \beta_i) s_i
      \ (i = \text{oldest} \dots \text{newest});\quad d_k = r$$

    (the scale uses the newest pair; the very first direction is
    $-\nabla f$). The step is $x \leftarrow x + t\,d_k$ with
    $t = \gamma\min(1, 1/\lVert\nabla f\rVert_1)$ on the first iteration
    ever and $t = \gamma$ afterwards, or, with
    `line_search_fn="strong_wolfe"`, the step length found from that
    initial guess by a bracketing + zoom line search with safeguarded cubic
    interpolation satisfying the strong Wolfe conditions ($c_1 = 10^{-4}$,
    $c_2 = 0.9$). A step stops early when
    $\max|\nabla f| \le$ `tolerance_grad`, when
    $\nabla f^\top d > -$`tolerance_change`, when
    $\max|t d| \le$ `tolerance_change`, when the loss changes by less than
    `tolerance_change`, or when `max_eval` evaluations are used. History,
    last direction, step length and previous gradient persist across calls
    (and through `.keras` save/load), so repeated :meth:`minimize` calls
    continue like torch's repeated `step(closure)` calls.

    Gradients come from the active backend's autodiff (TF `GradientTape`,
    `jax.value_and_grad` of a stateless function of the variable values,
    torch autograd), compiled on JAX and eager on TF and torch unless
    `jit_compile` says otherwise (see :meth:`minimize`). All variables must
    share one floating dtype. The flat-vector algebra (two-loop recursion,
    line search) runs in NumPy on the host in that dtype, with torch's
    type promotion for the scalars (a float32 dot product stays float32
    when combined with Python floats): one host copy of the gradient per
    loss evaluation, which suits the small and medium models L-BFGS is
    used for. A float64 run is as precise as the loss function: Keras's
    type promotion computes some float64 ops in float32 on JAX and torch
    (on torch `ops.matmul`, and with it `keras.layers.Dense`; on JAX
    `ops.tanh`), which puts a float64 Dense model ~1e-6 away from torch's
    float64 run while the L-BFGS algebra itself stays float64.

    Differs from `keras.optimizers.Optimizer` (Keras has no L-BFGS): `apply`
    / `apply_gradients` and therefore `model.fit` raise a `TypeError`
    pointing here. Differs from optax's `optax.lbfgs`: optax's default line
    search is a zoom search with other constants, it scales the initial
    inverse Hessian the same way but starts every step with a fresh
    step-length guess and runs one iteration per `update`.

    State: the history buffers are preallocated as two
    `(history_size, n)` variables (n = number of parameters), the memory
    torch uses once its history is full; lower `history_size` for large
    models.

    Args:
        learning_rate: Float >= 0, the step length $\gamma$ (torch's `lr`).
            A schedule or callable is read once per :meth:`minimize` call.
            Defaults to `1`.
        max_iter: Int >= 1, iterations per :meth:`minimize` call.
            Defaults to `20`.
        max_eval: Int >= 1 or None, loss evaluations per call; None means
            `max_iter * 5 // 4`. Defaults to `None`.
        tolerance_grad: Float >= 0, first-order optimality tolerance.
            Defaults to `1e-7`.
        tolerance_change: Float >= 0, tolerance on loss / parameter
            changes. Defaults to `1e-9`.
        history_size: Int >= 1, curvature pairs kept. Defaults to `100`.
        line_search_fn: None or `"strong_wolfe"`. Defaults to `None`.
        **kwargs: `name` (the Keras base arguments for gradient processing,
            `clipnorm`, `use_ema`, ... do not apply to a closure-driven
            optimizer and raise).

    References:
        - Nocedal, 1980, "Updating Quasi-Newton Matrices with Limited
          Storage"; Liu and Nocedal, 1989, "On the limited memory BFGS
          method for large scale optimization".
        - Nocedal and Wright, "Numerical Optimization", 2nd ed., algorithms
          3.5/3.6 (line search) and 7.4 (two-loop recursion).
        - torch.optim.LBFGS (PyTorch 2.13), after Mark Schmidt's minFunc.
    """

    _hyperparameters = ("max_iter", "max_eval", "tolerance_grad",
                        "tolerance_change", "history_size", "line_search_fn")

    #: a closure-driven optimizer: `apply` cannot run it (see `minimize`)
    requires_closure = True

    def __init__(
        self,
        learning_rate=1.0,
        max_iter=20,
        max_eval=None,
        tolerance_grad=1e-7,
        tolerance_change=1e-9,
        history_size=100,
        line_search_fn=None,
        name=None,
        **kwargs,
    ):
        learning_rate = validation.as_real(learning_rate)
        if isinstance(learning_rate, float):
            validation.check_real("learning_rate", learning_rate, low=0.0)
        elif not callable(learning_rate):
            raise TypeError(
                "Argument `learning_rate` must be a real number, a "
                "keras.optimizers.schedules.LearningRateSchedule or a "
                f"callable. Received: learning_rate={learning_rate!r}")
        active = ("clipnorm", "clipvalue", "global_clipnorm", "use_ema",
                  "loss_scale_factor", "gradient_accumulation_steps")
        unsupported = sorted(k for k in active
                             if kwargs.get(k) not in (None, False))
        if unsupported:
            raise ValueError(
                "LBFGS is driven by a loss closure (`minimize`); the Keras "
                "gradient-processing arguments do not apply to it. "
                f"Received: {', '.join(f'{k}={kwargs[k]!r}' for k in unsupported)}")
        if name is None:  # "lbfgs", as the registry
            name = default_name(type(self))
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self._lr_float = learning_rate if isinstance(learning_rate, float) \
            else None
        self.max_iter = validation.check_int("max_iter", max_iter, 1)
        self.max_eval = None if max_eval is None else validation.check_int(
            "max_eval", max_eval, 1)
        self.tolerance_grad = validation.check_real(
            "tolerance_grad", tolerance_grad, low=0.0)
        self.tolerance_change = validation.check_real(
            "tolerance_change", tolerance_change, low=0.0)
        self.history_size = validation.check_int(
            "history_size", history_size, 1)
        if line_search_fn not in (None, "strong_wolfe"):
            raise ValueError(
                "Argument `line_search_fn` must be None or 'strong_wolfe'. "
                f"Received: line_search_fn={line_search_fn!r}")
        self.line_search_fn = line_search_fn
        self._vg_cache = None

    # ------------------------------------------------------------ keras API
    @property
    def learning_rate(self):
        return self._get_current_learning_rate()

    @learning_rate.setter
    def learning_rate(self, value):
        value = validation.as_real(value)
        if isinstance(value, float):
            validation.check_real("learning_rate", value, low=0.0)
        keras.optimizers.Optimizer.learning_rate.fset(self, value)
        self._lr_float = value if isinstance(value, float) else None

    def _exact_learning_rate(self):
        """The learning rate as a Python float. Keras keeps a float rate in
        a float32 variable; torch uses the double. The double given to the
        constructor or the setter is used while the variable still holds its
        float32 rounding (a schedule, or a value loaded or assigned
        otherwise, is read from the variable)."""
        current = float(ops.convert_to_numpy(self.learning_rate))
        exact = getattr(self, "_lr_float", None)
        if exact is not None and np.float32(exact) == np.float32(current):
            return exact
        return current

    def build(self, var_list):
        if self.built:
            return
        var_list = list(var_list)
        super().build(var_list)
        dtypes = {keras.backend.standardize_dtype(v.dtype) for v in var_list}
        if len(dtypes) != 1 or not next(iter(dtypes)).startswith("float"):
            raise ValueError(
                "LBFGS works on one flat vector: all variables must share one "
                f"floating dtype. Received dtypes: {sorted(dtypes)}")
        self._dtype = dtypes.pop()
        self._sizes = [int(np.prod(v.shape)) for v in var_list]
        self._shapes = [tuple(v.shape) for v in var_list]
        self._offsets = [int(o) for o in np.cumsum(self._sizes)[:-1]]
        n, h = sum(self._sizes), self.history_size

        def var(name, shape, dtype=None):
            return self.add_variable(shape=shape, initializer="zeros",
                                     dtype=dtype or self._dtype, name=name)

        # torch's state names; counters as int32
        self._n_iter = var("n_iter", (), "int32")
        self._func_evals = var("func_evals", (), "int32")
        self._num_old = var("num_old", (), "int32")
        self._t = var("t", ())
        self._h_diag = var("H_diag", ())
        self._d = var("d", (n,))
        self._prev_flat_grad = var("prev_flat_grad", (n,))
        self._old_dirs = var("old_dirs", (h, n))
        self._old_stps = var("old_stps", (h, n))
        self._ro = var("ro", (h,))

    def update_step(self, gradient, variable, learning_rate):
        raise TypeError(self._no_apply_message())

    def apply(self, grads, trainable_variables=None):
        raise TypeError(self._no_apply_message())

    def _no_apply_message(self):
        return (
            "LBFGS re-evaluates the loss several times per step and cannot "
            "be driven by gradients (`apply`, `apply_gradients`, "
            "`model.fit`). Use `optimizer.minimize(loss_fn, variables)` or "
            "`keras_optzoo.optimizers.lbfgs.fit_lbfgs(model, x, y)`.")

    def get_config(self):
        config = super().get_config()
        if isinstance(config["learning_rate"], float):
            config["learning_rate"] = float(np.format_float_positional(
                np.float32(config["learning_rate"]), unique=True))
        for name in self._hyperparameters:
            config[name] = getattr(self, name)
        return config

    # ------------------------------------------------------------ gradients
    def _value_and_grad(self, loss_fn, variables, jit_compile):
        key = (loss_fn, tuple(id(v) for v in variables), bool(jit_compile))
        if self._vg_cache is not None and self._vg_cache[0] == key:
            return self._vg_cache[1]
        fn = _make_value_and_grad(loss_fn, variables, jit_compile)
        self._vg_cache = (key, fn)
        return fn

    # ---------------------------------------------------------------- step
    def minimize(self, loss_fn, variables, jit_compile=None):
        """One `torch.optim.LBFGS.step(closure)`.

        Args:
            loss_fn: callable with no arguments returning the scalar loss,
                computed from the current values of `variables` (read them
                inside, e.g. by calling a model): it is called several times.
            variables: the variables to optimise (the same list, in the same
                order, on every call).
            jit_compile: compile the loss-and-gradient function (JAX
                `jax.jit`, TF `tf.function(jit_compile=True)`; ignored on
                torch). `loss_fn` must then be traceable and free of Python
                side effects. Defaults to True on JAX (which traces `loss_fn`
                anyway, and is slow to differentiate eagerly) and False on
                TF and torch. The compiled function is cached for the last
                `(loss_fn, variables)`: pass the same function object on
                every call.

        Returns:
            The loss at the start of the step (torch's `orig_loss`), a 0-d
            tensor.
        """
        variables = list(variables)
        if jit_compile is None:
            jit_compile = keras.backend.backend() == "jax"
        if not self.built:
            self.build(variables)
        elif [tuple(v.shape) for v in variables] != self._shapes:
            raise ValueError(
                "`minimize` must receive the variables the optimizer was "
                f"built with (shapes {self._shapes}). Received shapes "
                f"{[tuple(v.shape) for v in variables]}")
        step = _Step(self, self._value_and_grad(loss_fn, variables,
                                                jit_compile), variables)
        if keras.backend.backend() == "torch":
            import torch

            with torch.no_grad():  # as torch's step; the closure enables it
                return step.run()
        return step.run()


class _Step:
    """The control flow of one torch LBFGS.step(closure), on flat vectors.

    The vector algebra runs in NumPy on the host, in the variables' dtype
    (elementwise IEEE arithmetic, as torch's kernels): one host copy of the
    gradient per evaluation and no per-shape compilation on JAX. The loss
    and its gradient are computed by the backend.
    """

    def __init__(self, opt, value_and_grad, variables):
        self.opt = opt
        self.vg = value_and_grad
        self.variables = variables
        self.dtype = opt._dtype
        self.np_dtype = np.dtype(self.dtype)

    # ------------------------------------------------------------- helpers
    def host(self, x):
        return np.asarray(ops.convert_to_numpy(x), dtype=self.np_dtype)

    def flat(self, arrays):
        return np.concatenate([np.reshape(a, (-1,)) for a in arrays])

    def evaluate(self):
        """(loss tensor, loss as float, flat gradient)."""
        loss, grads = self.vg()
        grads = [np.zeros(s, self.np_dtype) if g is None else self.host(g)
                 for g, s in zip(grads, self.opt._shapes)]
        return loss, float(ops.convert_to_numpy(loss)), self.flat(grads)

    def params(self):
        return [self.host(v.value) for v in self.variables]

    def set_params(self, values):
        for v, value in zip(self.variables, values):
            v.assign(value)

    def add_grad(self, t, d):
        t = self.np_dtype.type(t)
        pieces = np.split(d, self.opt._offsets)
        self.set_params([p + t * np.reshape(piece, shape) for p, piece, shape
                         in zip(self.params(), pieces, self.opt._shapes)])

    def clone_params(self):
        return self.params()

    def directional_evaluate(self, x, t, d):
        t = self.np_dtype.type(t)
        pieces = np.split(d, self.opt._offsets)
        self.set_params([p + t * np.reshape(piece, shape) for p, piece, shape
                         in zip(x, pieces, self.opt._shapes)])
        _, loss, flat_grad = self.evaluate()
        self.set_params(x)
        return loss, flat_grad

    @staticmethod
    def dot(a, b):
        return np.dot(a, b)

    def num(self, x):
        """A 0-d value as a NumPy scalar of the dtype: the line search's
        scalar arithmetic then promotes as torch's 0-d tensors do (a float32
        value stays float32 when combined with Python floats, NEP 50)."""
        return self.np_dtype.type(x)

    def abs_max(self, x):
        return float(np.max(np.abs(x)))

    # ----------------------------------------------------------------- run
    def run(self):
        opt = self.opt
        lr = opt._exact_learning_rate()
        max_iter = opt.max_iter
        max_eval = opt.max_eval if opt.max_eval is not None \
            else max_iter * 5 // 4
        tol_grad, tol_change = opt.tolerance_grad, opt.tolerance_change
        history_size = opt.history_size

        state_n_iter = int(ops.convert_to_numpy(opt._n_iter.value))
        func_evals = int(ops.convert_to_numpy(opt._func_evals.value))

        orig_loss, loss, flat_grad = self.evaluate()
        current_evals = 1
        func_evals += 1
        opt._func_evals.assign(func_evals)
        opt.iterations.assign_add(1)
        if self.abs_max(flat_grad) <= tol_grad:
            return orig_loss

        # state from previous calls
        num_old = int(ops.convert_to_numpy(opt._num_old.value))
        old_dirs = list(self.host(opt._old_dirs.value)[:num_old])
        old_stps = list(self.host(opt._old_stps.value)[:num_old])
        ro = list(self.host(opt._ro.value)[:num_old])
        d = self.host(opt._d.value) if state_n_iter else None
        t = float(self.host(opt._t.value))
        h_diag = self.host(opt._h_diag.value)[()]
        prev_flat_grad = self.host(opt._prev_flat_grad.value)

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state_n_iter += 1

            # ---- direction (two-loop recursion)
            if state_n_iter == 1:
                d = -flat_grad
                old_dirs, old_stps, ro = [], [], []
                h_diag = self.np_dtype.type(1.0)
            else:
                y = flat_grad - prev_flat_grad
                s = d * self.np_dtype.type(t)
                ys = self.dot(y, s)
                if ys > 1e-10:
                    if len(old_dirs) == history_size:
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(self.np_dtype.type(1.0) / ys)
                    h_diag = ys / self.dot(y, y)
                q = -flat_grad
                al = [None] * len(old_dirs)
                for i in range(len(old_dirs) - 1, -1, -1):
                    al[i] = self.dot(old_stps[i], q) * ro[i]
                    q = q - al[i] * old_dirs[i]
                r = q * h_diag
                for i in range(len(old_dirs)):
                    be_i = self.dot(old_dirs[i], r) * ro[i]
                    r = r + (al[i] - be_i) * old_stps[i]
                d = r

            prev_flat_grad = flat_grad
            prev_loss = loss

            # ---- step length
            if state_n_iter == 1:
                ratio = self.np_dtype.type(1.0) / np.sum(np.abs(flat_grad))
                # torch: min(1.0, tensor) * lr, in the gradient's dtype
                t = lr if not ratio < 1.0 else ratio * lr
            else:
                t = lr

            gtd = self.dot(flat_grad, d)
            if gtd > -tol_change:
                break

            ls_func_evals = 0
            if opt.line_search_fn is not None:
                x_init = self.clone_params()
                loss, flat_grad, t, ls_func_evals = _strong_wolfe(
                    self.directional_evaluate, x_init, t, d, loss, flat_grad,
                    gtd, self, max_ls=max_eval - current_evals)
                self.add_grad(t, d)
                opt_cond = self.abs_max(flat_grad) <= tol_grad
            else:
                self.add_grad(t, d)
                opt_cond = False
                if n_iter != max_iter:
                    _, loss, flat_grad = self.evaluate()
                    opt_cond = self.abs_max(flat_grad) <= tol_grad
                    ls_func_evals = 1

            current_evals += ls_func_evals
            func_evals += ls_func_evals

            if n_iter == max_iter:
                break
            if current_evals >= max_eval:
                break
            if opt_cond:
                break
            if self.abs_max(d * self.np_dtype.type(t)) <= tol_change:
                break
            if abs(loss - prev_loss) < tol_change:
                break

        # ---- persist the state (torch keeps it in optimizer.state)
        opt._n_iter.assign(state_n_iter)
        opt._func_evals.assign(func_evals)
        opt._num_old.assign(len(old_dirs))
        opt._t.assign(self.np_dtype.type(t))
        opt._h_diag.assign(self.np_dtype.type(h_diag))
        opt._d.assign(d)
        opt._prev_flat_grad.assign(prev_flat_grad)
        if old_dirs:
            k, n = len(old_dirs), sum(opt._sizes)
            buf = np.zeros((2, history_size, n), self.np_dtype)
            buf[0, :k], buf[1, :k] = old_dirs, old_stps
            ro_buf = np.zeros((history_size,), self.np_dtype)
            ro_buf[:k] = ro
            opt._old_dirs.assign(buf[0])
            opt._old_stps.assign(buf[1])
            opt._ro.assign(ro_buf)
        return orig_loss


# ----------------------------------------------------------- line search
def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    """Minimiser of the cubic through (x1, f1, g1) and (x2, f2, g2),
    clipped to ``bounds`` (default: the interval between the points); the
    middle of the bounds when the cubic has no real minimiser."""
    if bounds is not None:
        lo, hi = bounds
    else:
        lo, hi = (x1, x2) if x1 <= x2 else (x2, x1)
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    disc = d1 * d1 - g1 * g2
    if disc >= 0:
        d2 = np.sqrt(disc)
        if x1 <= x2:
            x = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            x = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(x, lo), hi)
    return (lo + hi) / 2.0


def _strong_wolfe(evaluate, x, t, d, f, g, gtd, step, c1=1e-4, c2=0.9,
                  tolerance_change=1e-9, max_ls=25):
    """Strong-Wolfe line search along ``d`` from the parameters ``x``
    (torch's algorithm: bracket, then zoom with safeguarded cubic steps).

    Returns (loss, flat gradient, step length, evaluations used)."""
    d_norm = step.abs_max(d)
    f_new, g_new = evaluate(x, t, d)
    evals = 1
    gtd_new = step.num(step.dot(g_new, d))

    t_prev, f_prev, g_prev, gtd_prev = 0.0, f, g, gtd
    done = False
    ls_iter = 0
    bracket = bracket_f = bracket_g = bracket_gtd = None
    while ls_iter < max_ls:
        if f_new > f + c1 * t * gtd or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new], [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new], [gtd_prev, gtd_new]
            break
        # extrapolate
        t_next = _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new,
                                    gtd_new,
                                    bounds=(t + 0.01 * (t - t_prev), t * 10))
        t_prev, f_prev, g_prev, gtd_prev = t, f_new, g_new, gtd_new
        t = t_next
        f_new, g_new = evaluate(x, t, d)
        evals += 1
        gtd_new = step.num(step.dot(g_new, d))
        ls_iter += 1

    if ls_iter == max_ls:
        bracket, bracket_f, bracket_g = [0.0, t], [f, f_new], [g, g_new]

    # zoom
    insuf_progress = False
    low, high = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0],
                               bracket[1], bracket_f[1], bracket_gtd[1])
        top, bottom = max(bracket), min(bracket)
        eps = 0.1 * (top - bottom)
        if min(top - t, t - bottom) < eps:
            # too close to an end of the bracket
            if insuf_progress or t >= top or t <= bottom:
                t = top - eps if abs(t - top) < abs(t - bottom) \
                    else bottom + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False

        f_new, g_new = evaluate(x, t, d)
        evals += 1
        gtd_new = step.num(step.dot(g_new, d))
        ls_iter += 1

        if f_new > f + c1 * t * gtd or f_new >= bracket_f[low]:
            # not enough decrease: the new point becomes the high end
            bracket[high], bracket_f[high] = t, f_new
            bracket_g[high], bracket_gtd[high] = g_new, gtd_new
            low, high = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high] - bracket[low]) >= 0:
                bracket[high], bracket_f[high] = bracket[low], bracket_f[low]
                bracket_g[high] = bracket_g[low]
                bracket_gtd[high] = bracket_gtd[low]
            bracket[low], bracket_f[low] = t, f_new
            bracket_g[low], bracket_gtd[low] = g_new, gtd_new

    return bracket_f[low], bracket_g[low], bracket[low], evals


# ------------------------------------------------- backend autodiff
def _make_value_and_grad(loss_fn, variables, jit_compile):
    """``() -> (loss, [gradient or None per variable])`` for the backend."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        def tf_value_and_grad():
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                for v in variables:
                    tape.watch(v.value)
                loss = loss_fn()
            return loss, tape.gradient(loss, [v.value for v in variables])

        if jit_compile:
            return tf.function(tf_value_and_grad, jit_compile=True)
        return tf_value_and_grad
    if backend == "jax":
        import jax

        def stateless_loss(values):
            with keras.StatelessScope(
                    state_mapping=list(zip(variables, values))):
                return loss_fn()

        fn = jax.value_and_grad(stateless_loss)
        if jit_compile:
            fn = jax.jit(fn)

        def jax_value_and_grad():
            return fn([v.value for v in variables])

        return jax_value_and_grad
    if backend == "torch":
        import torch

        def torch_value_and_grad():
            values = [v.value for v in variables]
            with torch.enable_grad():
                loss = loss_fn()
                grads = torch.autograd.grad(loss, values, allow_unused=True)
            return loss.detach(), list(grads)

        return torch_value_and_grad
    raise NotImplementedError(
        f"LBFGS needs autodiff; backend {backend!r} is not supported "
        "(use jax, tensorflow or torch).")


# ---------------------------------------------------------- Keras entry
def fit_lbfgs(model, x, y=None, loss=None, steps=1, optimizer=None,
              sample_weight=None, jit_compile=None, verbose=0):
    """Trains ``model`` full-batch with L-BFGS: ``steps`` calls of
    :meth:`LBFGS.minimize` on the loss over all of ``(x, y)``.

    Args:
        model: a built Keras model (call it once, or give it an `Input`).
        x, y: the whole training set (arrays or tensors; held in memory).
        loss: a Keras loss (name, function or `keras.losses.Loss`); defaults
            to the loss `model` was compiled with. The model's
            regularisation losses (`model.losses`) are added.
        steps: number of L-BFGS steps (torch `optimizer.step(closure)`
            calls), each up to `max_iter` iterations.
        optimizer: an :class:`LBFGS`; defaults to `model.optimizer` (so
            `model.compile(optimizer=LBFGS(...), loss=...)` then
            `model.save(...)` saves the L-BFGS state with the model).
        sample_weight: optional per-sample weights for the loss.
        jit_compile: compile the loss-and-gradient function. Defaults to
            True on JAX and TensorFlow, False on torch.
        verbose: 1 prints the loss after each step.

    Returns:
        The list of losses at the start of each step, as floats (torch's
        `step(closure)` return values).
    """
    optimizer = optimizer if optimizer is not None else getattr(
        model, "optimizer", None)
    if not isinstance(optimizer, LBFGS):
        raise TypeError(
            "fit_lbfgs needs an LBFGS optimizer: pass `optimizer=` or compile "
            f"the model with one. Received: {optimizer!r}")
    if loss is None:
        loss = getattr(model, "loss", None)
        if loss is None:
            raise ValueError("fit_lbfgs needs `loss=` (or a compiled model).")
    loss = keras.losses.get(loss)
    if jit_compile is None:
        jit_compile = keras.backend.backend() in ("jax", "tensorflow")
    x = keras.tree.map_structure(ops.convert_to_tensor, x)
    y = None if y is None else keras.tree.map_structure(
        ops.convert_to_tensor, y)
    if sample_weight is not None:
        sample_weight = ops.convert_to_tensor(sample_weight)
    variables = model.trainable_variables

    def loss_fn():
        pred = model(x, training=True)
        if isinstance(loss, keras.losses.Loss):
            value = loss(y, pred, sample_weight=sample_weight)
        else:  # a loss function ("mse"): per-sample values, reduced here
            value = loss(y, pred)
            if sample_weight is not None:
                value = value * ops.cast(sample_weight, value.dtype)
            value = ops.mean(value)
        if model.losses:
            value = value + ops.sum(ops.stack(model.losses))
        return value

    losses = []
    for k in range(int(steps)):
        value = float(ops.convert_to_numpy(
            optimizer.minimize(loss_fn, variables, jit_compile=jit_compile)))
        losses.append(value)
        if verbose:
            print(f"L-BFGS step {k + 1}/{steps}: loss {value:.6g}")
    return losses
