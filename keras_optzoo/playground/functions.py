"""Two-dimensional test surfaces for watching optimizers move.

Each surface is written once, as an expression over a small "math namespace"
argument: evaluated with ``keras.ops`` it is differentiable by the active
backend (JAX, TensorFlow or PyTorch), evaluated with ``numpy`` it gives fast
float64 values for contour grids and for locating minima precisely.

Example:

>>> from keras_optzoo.playground import get_function
>>> rosen = get_function("rosenbrock")
>>> rosen.minima
[(1.0, 1.0)]
>>> float(rosen.numpy(1.0, 1.0))
0.0
"""

import dataclasses
import functools
import math
from typing import Callable, Optional

import numpy as np

__all__ = ["Surface", "FUNCTIONS", "get_function", "list_functions"]


@dataclasses.dataclass(frozen=True, eq=False)
class Surface:
    """A scalar function of two variables with the facts needed to plot it.

    Attributes:
        name: Registry name, e.g. ``"rosenbrock"``.
        expression: ``expression(x, y, m)`` computes the value using only
            functions that ``numpy`` and ``keras.ops`` both provide under the
            same name (``m.cos``, ``m.square``, ...). Use `f` or `numpy`
            rather than calling this directly.
        domain: ``((xmin, xmax), (ymin, ymax))``, the region that is plotted
            and sampled.
        start: Default starting point ``(x, y)`` for trajectories.
        log_levels: Whether contour levels should be spaced logarithmically
            (surfaces whose values span many orders of magnitude).
        gradient_expression: Optional hand-derived gradient,
            ``gradient_expression(x, y, m) -> (df/dx, df/dy)``.
        minima_hint: Approximate global minimisers. They are refined with
            Newton's method in float64 the first time `minima` is read, so
            the hint only has to be in the right basin; exact values stay
            exact.
        description: One line shown by ``--list``.
    """

    name: str
    expression: Callable
    domain: tuple
    start: tuple
    log_levels: bool = False
    gradient_expression: Optional[Callable] = None
    minima_hint: tuple = ()
    description: str = ""

    def f(self, x, y):
        """Value at ``(x, y)`` computed with ``keras.ops`` (differentiable)."""
        from keras import ops

        return self.expression(x, y, ops)

    def __call__(self, x, y):
        return self.f(x, y)

    def numpy(self, x, y):
        """Value at ``(x, y)`` computed with NumPy in float64."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        return self.expression(x, y, np)

    def gradient(self, x, y):
        """Hand-derived gradient in float64, or `None` when none is given."""
        if self.gradient_expression is None:
            return None
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        gx, gy = self.gradient_expression(x, y, np)
        return np.stack(np.broadcast_arrays(gx, gy), axis=-1)

    @functools.cached_property
    def minima(self):
        """Global minimisers as a list of ``(x, y)`` floats (``[]`` if none)."""
        return [self._polish(p) for p in self.minima_hint]

    @property
    def minimum_value(self):
        """The global minimum value, or `None` for unbounded surfaces."""
        if not self.minima:
            return None
        return float(min(self.numpy(x, y) for x, y in self.minima))

    def grid(self, resolution=200):
        """Return ``(X, Y, Z)`` float64 mesh arrays over `domain`."""
        (x0, x1), (y0, y1) = self.domain
        xs = np.linspace(x0, x1, resolution)
        ys = np.linspace(y0, y1, resolution)
        xx, yy = np.meshgrid(xs, ys)
        return xx, yy, self.numpy(xx, yy)

    def _numeric_gradient(self, p, h=1e-6):
        x, y = p
        gx = (self.numpy(x + h, y) - self.numpy(x - h, y)) / (2 * h)
        gy = (self.numpy(x, y + h) - self.numpy(x, y - h)) / (2 * h)
        return np.array([gx, gy], dtype=np.float64)

    def _grad64(self, p):
        if self.gradient_expression is not None:
            return self.gradient(p[0], p[1])
        return self._numeric_gradient(p)

    def _polish(self, hint, iterations=50):
        """Newton's method on the gradient, Hessian by central differences."""
        p = np.asarray(hint, dtype=np.float64)
        if not np.any(self._grad64(p)):
            return (float(p[0]), float(p[1]))
        h = 1e-5
        for _ in range(iterations):
            g = self._grad64(p)
            hess = np.empty((2, 2))
            for j in range(2):
                e = np.zeros(2)
                e[j] = h
                hess[:, j] = (self._grad64(p + e) - self._grad64(p - e)) / (2 * h)
            step = np.linalg.solve(0.5 * (hess + hess.T), g)
            p = p - step
            if np.max(np.abs(step)) < 1e-13:
                break
        return (float(p[0]), float(p[1]))

    def __repr__(self):
        return f"Surface({self.name!r}, domain={self.domain}, start={self.start})"


# ---------------------------------------------------------------------------
# The surfaces. Every expression uses only names that exist in both numpy and
# keras.ops (square, cos, ...) plus Python arithmetic operators.


def _tutorial(x, y, m):
    x2 = m.square(x)
    y2 = m.square(y)
    return (
        0.4 * x2 * y2
        + 0.3 * x2 * y
        + 0.3 * x2
        + 0.3 * y2
        - 0.25 * x * y2
        + 0.31 * x * y
        - 0.2 * x
        + 2.1 * y
    )


def _tutorial_grad(x, y, m):
    dx = 0.8 * x * y * y + 0.6 * x * y + 0.6 * x - 0.25 * y * y + 0.31 * y - 0.2
    dy = 0.8 * x * x * y + 0.3 * x * x + 0.6 * y - 0.5 * x * y + 0.31 * x + 2.1
    return dx, dy


def _rosenbrock(x, y, m):
    return m.square(1.0 - x) + 100.0 * m.square(y - m.square(x))


def _rosenbrock_grad(x, y, m):
    return (-2.0 * (1.0 - x) - 400.0 * x * (y - x * x), 200.0 * (y - x * x))


def _beale(x, y, m):
    return (
        m.square(1.5 - x + x * y)
        + m.square(2.25 - x + x * m.square(y))
        + m.square(2.625 - x + x * y * m.square(y))
    )


def _beale_grad(x, y, m):
    a = 1.5 - x + x * y
    b = 2.25 - x + x * y * y
    c = 2.625 - x + x * y**3
    dx = 2 * a * (y - 1) + 2 * b * (y * y - 1) + 2 * c * (y**3 - 1)
    dy = 2 * a * x + 2 * b * 2 * x * y + 2 * c * 3 * x * y * y
    return dx, dy


def _himmelblau(x, y, m):
    return m.square(m.square(x) + y - 11.0) + m.square(x + m.square(y) - 7.0)


def _himmelblau_grad(x, y, m):
    a = x * x + y - 11.0
    b = x + y * y - 7.0
    return 4.0 * x * a + 2.0 * b, 2.0 * a + 4.0 * y * b


def _rastrigin(x, y, m):
    two_pi = 2.0 * math.pi
    return (
        20.0
        + m.square(x)
        - 10.0 * m.cos(two_pi * x)
        + m.square(y)
        - 10.0 * m.cos(two_pi * y)
    )


def _rastrigin_grad(x, y, m):
    two_pi = 2.0 * math.pi
    return (
        2.0 * x + 10.0 * two_pi * m.sin(two_pi * x),
        2.0 * y + 10.0 * two_pi * m.sin(two_pi * y),
    )


def _goldstein_price(x, y, m):
    s = x + y + 1.0
    t = 2.0 * x - 3.0 * y
    first = 1.0 + m.square(s) * (
        19.0 - 14.0 * x + 3.0 * m.square(x) - 14.0 * y + 6.0 * x * y + 3.0 * m.square(y)
    )
    second = 30.0 + m.square(t) * (
        18.0 - 32.0 * x + 12.0 * m.square(x) + 48.0 * y - 36.0 * x * y + 27.0 * m.square(y)
    )
    return first * second


def _goldstein_price_grad(x, y, m):
    s = x + y + 1.0
    t = 2.0 * x - 3.0 * y
    a = 19.0 - 14.0 * x + 3.0 * x * x - 14.0 * y + 6.0 * x * y + 3.0 * y * y
    b = 18.0 - 32.0 * x + 12.0 * x * x + 48.0 * y - 36.0 * x * y + 27.0 * y * y
    first = 1.0 + s * s * a
    second = 30.0 + t * t * b
    d_first = 2.0 * s * a + s * s * (-14.0 + 6.0 * x + 6.0 * y)  # same for x and y
    d_second_x = 4.0 * t * b + t * t * (-32.0 + 24.0 * x - 36.0 * y)
    d_second_y = -6.0 * t * b + t * t * (48.0 - 36.0 * x + 54.0 * y)
    return (
        d_first * second + first * d_second_x,
        d_first * second + first * d_second_y,
    )


def _saddle(x, y, m):
    return m.square(x) - m.square(y)


def _saddle_grad(x, y, m):
    return 2.0 * x, -2.0 * y


# Condition number 100: curvature 1 along x and 100 along y.
_ILL_CURVATURE = 100.0


def _ill_conditioned(x, y, m):
    return 0.5 * (m.square(x) + _ILL_CURVATURE * m.square(y))


def _ill_conditioned_grad(x, y, m):
    return x, _ILL_CURVATURE * y


FUNCTIONS = {
    s.name: s
    for s in [
        Surface(
            name="tutorial",
            expression=_tutorial,
            gradient_expression=_tutorial_grad,
            domain=((-3.0, 4.0), (-6.5, 2.5)),
            start=(-2.0, 2.0),
            minima_hint=((0.48, -4.26),),
            description="polynomial with one curved valley; minimum near (0.482, -4.256)",
        ),
        Surface(
            name="rosenbrock",
            expression=_rosenbrock,
            gradient_expression=_rosenbrock_grad,
            domain=((-2.0, 2.0), (-1.0, 3.0)),
            start=(-1.2, 1.0),
            log_levels=True,
            minima_hint=((1.0, 1.0),),
            description="(1-x)^2 + 100 (y-x^2)^2, long curved valley; minimum (1, 1)",
        ),
        Surface(
            name="beale",
            expression=_beale,
            gradient_expression=_beale_grad,
            domain=((-4.5, 4.5), (-4.5, 4.5)),
            start=(1.0, 1.5),
            log_levels=True,
            minima_hint=((3.0, 0.5),),
            description="flat plateaus and steep ridges; minimum (3, 0.5)",
        ),
        Surface(
            name="himmelblau",
            expression=_himmelblau,
            gradient_expression=_himmelblau_grad,
            domain=((-5.0, 5.0), (-5.0, 5.0)),
            start=(0.0, 0.0),
            log_levels=True,
            minima_hint=(
                (3.0, 2.0),
                (-2.805118, 3.131312),
                (-3.779310, -3.283186),
                (3.584428, -1.848126),
            ),
            description="four global minima of value 0",
        ),
        Surface(
            name="rastrigin",
            expression=_rastrigin,
            gradient_expression=_rastrigin_grad,
            domain=((-5.12, 5.12), (-5.12, 5.12)),
            start=(-2.5, 3.3),
            minima_hint=((0.0, 0.0),),
            description="bowl covered in local minima; global minimum (0, 0)",
        ),
        Surface(
            name="goldstein_price",
            expression=_goldstein_price,
            gradient_expression=_goldstein_price_grad,
            domain=((-2.0, 2.0), (-2.0, 2.0)),
            start=(-0.6, 1.2),
            log_levels=True,
            minima_hint=((0.0, -1.0),),
            description="values from 3 to ~1e6 with local minima; minimum (0, -1), value 3",
        ),
        Surface(
            name="saddle",
            expression=_saddle,
            gradient_expression=_saddle_grad,
            domain=((-1.5, 1.5), (-1.5, 1.5)),
            start=(1.0, 1e-3),
            description="x^2 - y^2, unbounded below; a saddle point at (0, 0)",
        ),
        Surface(
            name="ill_conditioned",
            expression=_ill_conditioned,
            gradient_expression=_ill_conditioned_grad,
            domain=((-10.0, 10.0), (-3.0, 3.0)),
            start=(-9.0, 2.0),
            log_levels=True,
            minima_hint=((0.0, 0.0),),
            description="0.5 (x^2 + 100 y^2), condition number 100; minimum (0, 0)",
        ),
    ]
}


def list_functions():
    """Names of all registered surfaces, in registration order."""
    return list(FUNCTIONS)


def get_function(name):
    """Return the surface registered as `name` (a `Surface` passes through).

    Raises:
        ValueError: for an unknown name; the message lists the known ones.
    """
    if isinstance(name, Surface):
        return name
    key = str(name).strip().lower()
    if key not in FUNCTIONS:
        raise ValueError(
            f"Unknown test function {name!r}. "
            f"Known functions: {', '.join(FUNCTIONS)}."
        )
    return FUNCTIONS[key]
