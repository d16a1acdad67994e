"""Drive a Keras optimizer over a 2-D surface and record where it goes.

`run` works with any ``keras.optimizers.Optimizer``: a keras-optzoo optimizer,
a Keras built-in, or one whose learning rate is a
``keras.optimizers.schedules.LearningRateSchedule``. The parameter is a single
``keras.Variable`` of shape ``(2,)``; each step takes the gradient with the
active backend's own autodiff and calls ``optimizer.apply([grad], [var])``,
exactly as a training loop would (on TensorFlow inside one ``tf.function``,
as ``fit`` runs it: an eager TF step of a heavy optimizer costs tens of
milliseconds, its graph a fraction of one).
For a schedule-free optimizer (one with ``evaluation_point``, e.g.
``ScheduleFreeAdamW``) the recorded path and losses are those of its
evaluation point x, the iterate the method returns; the gradients are taken
at the training point y, as in training.

`compare` runs several optimizers from the same start. Optimizers may be given
as registry specs, strings of the form ``"name"`` or
``"name:key=value,key=value"`` where each value is a Python literal, e.g.
``"adam:learning_rate=0.05,amsgrad=True"``.
"""

import ast
import dataclasses
import functools
import re
from typing import Optional, Union

import numpy as np

from keras_optzoo.playground.functions import get_function

__all__ = [
    "Trajectory",
    "TrajectorySummary",
    "run",
    "compare",
    "parse_spec",
    "split_specs",
    "make_optimizer",
    "value_and_grad",
    "suggested_learning_rate",
    "SUGGESTED_LEARNING_RATES",
]


# ---------------------------------------------------------------------------
# Results


@dataclasses.dataclass(frozen=True)
class TrajectorySummary:
    """Headline numbers of one trajectory (see `Trajectory.summary`)."""

    name: str
    steps: int
    final_loss: float
    distance: Optional[float]
    first_within_tol: Optional[int]
    diverged_at: Optional[int]


@dataclasses.dataclass
class Trajectory:
    """The path of one optimizer.

    Attributes:
        name: Label, e.g. the registry spec or the dict key given to `compare`.
        points: ``(n + 1, 2)`` float64 array; row ``k`` is the parameter after
            ``k`` updates (row 0 is the start).
        losses: ``(n + 1,)`` float64 array; the function value at each row.
        diverged_at: Index of the first row holding a non-finite point or
            loss, or `None`. The run stops there, so when it is set it is the
            last row and ``n`` is smaller than the requested number of steps.
        learning_rate: The initial learning rate (a float), or the schedule's
            class name when the optimizer uses a schedule, or `None`.
    """

    name: str
    points: np.ndarray
    losses: np.ndarray
    diverged_at: Optional[int] = None
    learning_rate: Union[float, str, None] = None

    @property
    def steps(self):
        """Number of updates recorded (``len(points) - 1``)."""
        return len(self.points) - 1

    @property
    def diverged(self):
        return self.diverged_at is not None

    @property
    def finite_points(self):
        """The rows of `points` before divergence (all rows otherwise)."""
        end = len(self.points) if self.diverged_at is None else self.diverged_at
        return self.points[:end]

    @property
    def final_point(self):
        """The last finite point."""
        finite = self.finite_points
        return finite[-1] if len(finite) else self.points[0]

    @property
    def final_loss(self):
        """Loss at the last recorded row (non-finite if the run diverged)."""
        return float(self.losses[-1])

    def distances(self, function):
        """Distance of every finite point to its nearest global minimum.

        Returns `None` for surfaces without minima (the saddle).
        """
        minima = get_function(function).minima
        if not minima:
            return None
        pts = self.finite_points[:, None, :]
        mins = np.asarray(minima, dtype=np.float64)[None, :, :]
        return np.sqrt(np.sum((pts - mins) ** 2, axis=-1)).min(axis=1)

    def summary(self, function, tol=1e-2):
        """Final loss, distance to the nearest minimum, first step within `tol`.

        Args:
            function: The surface (or its name) the trajectory ran on.
            tol: Euclidean distance to a minimum that counts as arrived.

        Returns:
            A `TrajectorySummary`. ``distance`` and ``first_within_tol`` are
            `None` when the surface has no minima; ``first_within_tol`` is also
            `None` when the path never came within `tol`.
        """
        d = self.distances(function)
        if d is None or len(d) == 0:
            distance, first = None, None
        else:
            distance = float(d[-1])
            hits = np.flatnonzero(d <= tol)
            first = int(hits[0]) if len(hits) else None
        return TrajectorySummary(
            name=self.name,
            steps=self.steps,
            final_loss=self.final_loss,
            distance=distance,
            first_within_tol=first,
            diverged_at=self.diverged_at,
        )


# ---------------------------------------------------------------------------
# Gradients with the active backend's autodiff


@functools.lru_cache(maxsize=None)
def _value_and_grad_fn(function):
    """Return ``fn(tensor) -> (loss, grad)`` for the active Keras backend."""
    import keras

    backend = keras.backend.backend()

    def loss_of(p):
        return function.f(p[0], p[1])

    if backend == "jax":
        import jax

        return jax.jit(jax.value_and_grad(loss_of))
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function(jit_compile=False, reduce_retracing=True)
        def tf_value_and_grad(p):
            with tf.GradientTape() as tape:
                tape.watch(p)
                loss = loss_of(p)
            return loss, tape.gradient(loss, p)

        return tf_value_and_grad
    if backend == "torch":
        import torch

        def torch_value_and_grad(p):
            p = p.detach().clone().requires_grad_(True)
            loss = loss_of(p)
            (grad,) = torch.autograd.grad(loss, p)
            return loss.detach(), grad

        return torch_value_and_grad
    raise NotImplementedError(
        f"The playground needs autodiff; backend {backend!r} is not supported "
        "(use jax, tensorflow or torch)."
    )


def value_and_grad(function, point):
    """Loss and gradient of `function` at `point` as NumPy float arrays.

    Uses the active backend's autodiff; handy for checking a surface.
    """
    import keras

    function = get_function(function)
    p = keras.ops.convert_to_tensor(np.asarray(point), dtype=keras.config.floatx())
    loss, grad = _value_and_grad_fn(function)(p)
    return (
        float(keras.ops.convert_to_numpy(loss)),
        np.asarray(keras.ops.convert_to_numpy(grad), dtype=np.float64),
    )


# ---------------------------------------------------------------------------
# Running


def _describe_learning_rate(optimizer):
    try:
        value = optimizer.get_config().get("learning_rate")
    except Exception:  # a user optimizer with an unusual config
        return None
    if isinstance(value, dict):
        return value.get("class_name", "schedule")
    if callable(value):
        return getattr(value, "__name__", type(value).__name__)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _apply_fn(optimizer, var):
    """``fn(grad)`` applying one step to ``var``: a ``tf.function`` on
    TensorFlow (built first, so that the optimizer's variables are created
    eagerly), ``optimizer.apply`` itself elsewhere."""
    import keras

    if keras.backend.backend() != "tensorflow" or getattr(
            optimizer, "requires_closure", False):
        return lambda grad: optimizer.apply([grad], [var])
    import tensorflow as tf

    optimizer.build([var])
    return tf.function(lambda grad: optimizer.apply([grad], [var]))


def run(optimizer, function, steps=300, start=None, name=None):
    """Minimise a 2-D surface with a Keras optimizer and record the path.

    Args:
        optimizer: A fresh (not yet built) ``keras.optimizers.Optimizer``, or
            a registry spec string such as ``"adam:learning_rate=0.1"``
            (see `make_optimizer`).
        function: A `Surface` or its registry name.
        steps: Number of updates.
        start: Starting ``(x, y)``; defaults to the surface's own start.
        name: Label of the result; defaults to the spec string or the
            optimizer's class name.

    Returns:
        A `Trajectory`. If a point or loss becomes non-finite the run stops
        and ``Trajectory.diverged_at`` records the row where it happened.
    """
    import keras

    function = get_function(function)
    if isinstance(optimizer, str):
        name = name or optimizer
        optimizer = make_optimizer(optimizer, function)
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise TypeError(
            "`optimizer` must be a keras.optimizers.Optimizer or a registry "
            f"spec string. Received: optimizer={optimizer!r}"
        )
    if getattr(optimizer, "built", False):
        raise ValueError(
            "`run` needs a fresh optimizer: this one is already built for other "
            "variables. Create a new instance for each run."
        )
    steps = int(steps)
    if steps < 0:
        raise ValueError(f"Argument `steps` must be >= 0. Received: steps={steps}")
    start = function.start if start is None else start
    start = np.asarray(start, dtype=np.float64).reshape(-1)
    if start.shape != (2,):
        raise ValueError(f"`start` must be a pair (x, y). Received: start={start}")

    name = name or type(optimizer).__name__
    learning_rate = _describe_learning_rate(optimizer)
    var = keras.Variable(start, dtype=keras.config.floatx(), name="xy")
    value_and_grad_fn = _value_and_grad_fn(function)
    to_np = keras.ops.convert_to_numpy

    closure = lambda: function.f(var[0], var[1])  # noqa: E731
    apply = _apply_fn(optimizer, var)
    # Schedule-free optimizers train at y and return x: the path shown is
    # x (``evaluation_point``), read without switching modes; the gradient
    # is still taken at the variable's value, y.
    evaluation_point = getattr(optimizer, "evaluation_point", None)
    points = np.full((steps + 1, 2), np.nan)
    losses = np.full(steps + 1, np.nan)
    points[0] = to_np(var.value)
    diverged_at = None
    for k in range(steps + 1):
        loss, grad = value_and_grad_fn(var.value)
        if evaluation_point is not None and k:
            shown = evaluation_point(var)
            points[k] = to_np(shown)
            loss = value_and_grad_fn(shown)[0]
        losses[k] = to_np(loss)
        if not (np.isfinite(losses[k]) and np.all(np.isfinite(points[k]))):
            diverged_at = k
            break
        if k == steps:
            break
        if getattr(optimizer, "requires_closure", False):
            # a closure-driven optimizer (LBFGS): one `minimize` call, i.e.
            # one torch `step(closure)`, per recorded point
            optimizer.minimize(closure, [var])
        else:
            apply(grad)
        if evaluation_point is None:
            points[k + 1] = to_np(var.value)
    end = len(points) if diverged_at is None else diverged_at + 1
    return Trajectory(
        name=name,
        points=points[:end],
        losses=losses[:end],
        diverged_at=diverged_at,
        learning_rate=learning_rate,
    )


def compare(optimizers, function, steps=300, start=None):
    """Run several optimizers on one surface from the same start.

    Args:
        optimizers: Either a dict ``label -> optimizer`` (optimizer instances
            or spec strings), or a list whose items are spec strings or
            optimizer instances (labelled by class name). A single string of
            comma-separated specs is accepted too.
        function: A `Surface` or its registry name.
        steps: Number of updates for each optimizer.
        start: Common starting point; defaults to the surface's start.

    Returns:
        A dict ``label -> Trajectory`` in the given order.
    """
    function = get_function(function)
    if isinstance(optimizers, str):
        optimizers = split_specs(optimizers)
    if isinstance(optimizers, dict):
        items = list(optimizers.items())
    else:
        items = []
        for item in optimizers:
            label = item if isinstance(item, str) else type(item).__name__
            items.append((label, item))
    labels = []
    for label, _ in items:
        unique, n = label, 2
        while unique in labels:
            unique, n = f"{label} ({n})", n + 1
        labels.append(unique)
    # Build every optimizer first so a bad spec fails before any work is done.
    built = [
        (label, make_optimizer(opt, function) if isinstance(opt, str) else opt)
        for label, (_, opt) in zip(labels, items)
    ]
    return {
        label: run(opt, function, steps=steps, start=start, name=label)
        for label, opt in built
    }


# ---------------------------------------------------------------------------
# Registry specs

_NAME_RE = re.compile(r"^[A-Za-z_][\w\-]*$")
_KEY_RE = re.compile(r"^[A-Za-z_]\w*$")


def _split_top_level(text, sep=","):
    """Split on `sep` outside brackets and quotes."""
    parts, depth, quote, current = [], 0, None, []
    for ch in text:
        if quote:
            current.append(ch)
            if ch == quote:
                quote = None
            continue
        if ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


def parse_spec(spec):
    """Parse ``"name"`` or ``"name:key=value,..."`` into ``(name, kwargs)``.

    Values are Python literals (numbers, True/False/None, quoted strings,
    tuples). Names are lower-cased.

    Raises:
        ValueError: for an empty name, a missing ``=``, an invalid key, a
            repeated key or a value that is not a literal.
    """
    if not isinstance(spec, str):
        raise ValueError(f"An optimizer spec must be a string. Received: {spec!r}")
    name, sep, rest = spec.strip().partition(":")
    name = name.strip().lower()
    if not _NAME_RE.match(name):
        raise ValueError(
            f"Malformed optimizer spec {spec!r}: expected 'name' or "
            "'name:key=value,...', e.g. 'adam:learning_rate=0.05,amsgrad=True'."
        )
    kwargs = {}
    if sep and not rest.strip():
        raise ValueError(
            f"Malformed optimizer spec {spec!r}: nothing after ':'; expected "
            "key=value pairs."
        )
    if sep:
        for item in _split_top_level(rest):
            key, eq, raw = item.partition("=")
            key = key.strip()
            if not eq or not _KEY_RE.match(key):
                raise ValueError(
                    f"Malformed optimizer spec {spec!r}: {item.strip()!r} is not "
                    "of the form key=value."
                )
            if key in kwargs:
                raise ValueError(
                    f"Malformed optimizer spec {spec!r}: {key!r} is given twice."
                )
            try:
                kwargs[key] = ast.literal_eval(raw.strip())
            except (ValueError, SyntaxError):
                raise ValueError(
                    f"Malformed optimizer spec {spec!r}: the value of {key!r} "
                    f"({raw.strip()!r}) is not a Python literal; quote strings, "
                    "e.g. name='run1'."
                ) from None
    return name, kwargs


def split_specs(text):
    """Split a comma-separated list of specs, keeping each spec's own pairs.

    ``"sgd,adam:learning_rate=0.1,amsgrad=True,nag"`` gives
    ``["sgd", "adam:learning_rate=0.1,amsgrad=True", "nag"]``: a piece that
    looks like ``key=value`` belongs to the spec before it.
    """
    specs = []
    for piece in _split_top_level(text):
        piece = piece.strip()
        if not piece:
            continue
        head = piece.split("=", 1)[0]
        if "=" in piece and ":" not in head:
            if not specs:
                raise ValueError(
                    f"Malformed optimizer list {text!r}: {piece!r} comes before "
                    "any optimizer name."
                )
            sep = "," if ":" in specs[-1] else ":"
            specs[-1] = f"{specs[-1]}{sep}{piece}"
        else:
            specs.append(piece)
    return specs


# Learning rates that make the default pictures informative within ~300 steps.
# The registry's own defaults are torch's (e.g. SGD 1e-3), mostly far too small
# to show anything on these surfaces. Each value came from a sweep over
# 1e-6..10 (300 steps from the surface's start), taking a rate that gets close
# to a minimum while staying clear of the rates that diverge. "nag" shares
# "momentum"'s rate, "gd" "sgd"'s and "adamw" "adam"'s.
def _rates(sgd, momentum, adagrad, rmsprop, adadelta, adam, nadam):
    return {
        "gd": sgd, "sgd": sgd, "momentum": momentum, "nag": momentum,
        "adagrad": adagrad, "rmsprop": rmsprop, "adadelta": adadelta,
        "adam": adam, "adamw": adam, "nadam": nadam,
    }


SUGGESTED_LEARNING_RATES = {
    # function:          sgd    momentum  adagrad rmsprop adadelta adam  nadam
    "tutorial": _rates(0.1, 0.01, 1.0, 0.1, 10.0, 0.1, 0.1),
    "rosenbrock": _rates(2e-3, 1e-3, 1.0, 0.05, 10.0, 0.2, 0.1),
    "beale": _rates(0.01, 2e-3, 1.0, 0.1, 10.0, 0.3, 0.3),
    "himmelblau": _rates(0.01, 3e-3, 1.0, 0.03, 10.0, 0.1, 0.1),
    "rastrigin": _rates(1e-3, 1e-3, 1.0, 0.1, 3.0, 0.1, 0.1),
    "goldstein_price": _rates(5e-6, 1e-6, 1.0, 0.03, 3.0, 0.3, 0.3),
    "saddle": _rates(0.01, 1e-3, 0.02, 2e-3, 0.02, 2e-3, 2e-3),
    "ill_conditioned": _rates(0.019, 0.01, 1.0, 0.1, 10.0, 0.1, 0.1),
}

# The schedule-free optimizers (the path shown is their evaluation point x),
# from the same kind of sweep (1e-7..3, 300 steps, the NumPy reference of
# tests/reference/np_schedule_free.py; a rate at least 3x below the first
# that diverges).
_SCHEDULE_FREE_RATES = {
    # function:          adamw  sgd    radam
    "tutorial": (0.3, 0.1, 1.0),
    "rosenbrock": (0.3, 1e-3, 1.0),
    "beale": (0.3, 0.01, 1.0),
    "himmelblau": (0.3, 0.03, 1.0),
    "rastrigin": (1.0, 0.1, 0.1),
    "goldstein_price": (1.0, 1e-5, 3.0),
    "saddle": (3e-3, 0.01, 0.01),
    "ill_conditioned": (0.3, 0.03, 1.0),
}
for _function, (_adamw, _sgd, _radam) in _SCHEDULE_FREE_RATES.items():
    SUGGESTED_LEARNING_RATES[_function].update({
        "schedulefree_adamw": _adamw, "schedulefree_sgd": _sgd,
        "schedulefree_radam": _radam})


def suggested_learning_rate(optimizer_name, function):
    """The playground's learning rate for a registry name on a surface.

    Returns `None` where no suggestion exists (the registry default is then
    used).
    """
    function = get_function(function)
    return SUGGESTED_LEARNING_RATES.get(function.name, {}).get(
        optimizer_name.lower()
    )


def _registry():
    """Return ``(get, list_optimizers)`` from keras-optzoo's registry."""
    import keras_optzoo

    return keras_optzoo.get, keras_optzoo.list_optimizers


def make_optimizer(spec, function=None):
    """Create a fresh optimizer from a registry spec.

    When the spec sets no ``learning_rate`` and `function` is given, the
    playground's suggested learning rate for that surface is used (see
    `SUGGESTED_LEARNING_RATES`); an explicit ``learning_rate`` always wins.

    Raises:
        ValueError: for a malformed spec or an unknown optimizer name; errors
            from the optimizer's own argument checks propagate unchanged.
    """
    name, kwargs = parse_spec(spec)
    get, _ = _registry()
    if "learning_rate" not in kwargs and function is not None:
        lr = suggested_learning_rate(name, function)
        if lr is not None:
            kwargs["learning_rate"] = lr
    return get(name, **kwargs)
