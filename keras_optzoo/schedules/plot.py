"""Drawing a schedule's curve with matplotlib."""

import numbers

import numpy as np

from keras import ops


def plot(schedule, steps, ax=None, label=None):
    """Plots ``schedule(step)`` against the step.

    Args:
        schedule: A `LearningRateSchedule` (or any callable of the step).
        steps: Int (plots steps `0 .. steps - 1`) or a sequence of steps.
        ax: Matplotlib `Axes` to draw on. Defaults to `None` (the current
            axes, `matplotlib.pyplot.gca()`).
        label: Legend label of the curve. Defaults to `None` (the
            schedule's class name).

    Returns:
        The `Axes` drawn on.

    matplotlib is imported only when this function is called; it is not a
    dependency of the package.
    """
    if ax is None:
        import matplotlib.pyplot as plt

        ax = plt.gca()
    if isinstance(steps, numbers.Integral):
        steps = range(steps)
    steps = np.asarray(list(steps), dtype="int64")
    values = _evaluate(schedule, steps)
    ax.plot(steps, values, label=label or type(schedule).__name__)
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    return ax


def _evaluate(schedule, steps):
    """The schedule's values at ``steps``: one vectorised call when the
    schedule broadcasts over a vector of steps (the closed forms do), else
    one call per step."""
    try:
        values = ops.convert_to_numpy(
            schedule(ops.convert_to_tensor(steps, dtype="int32")))
        values = np.asarray(values, dtype="float64")
        if values.shape == steps.shape:
            return values
    except Exception:  # a schedule written for scalar steps only
        pass
    return np.array(
        [float(ops.convert_to_numpy(schedule(int(s)))) for s in steps])
