"""Pictures of optimizer trajectories: contours, loss curves, GIFs, tables.

matplotlib is imported only when a plotting function is called. Figures are
created as ``matplotlib.figure.Figure`` objects rendered by Agg, without
pyplot, so nothing here changes the global matplotlib backend or leaks open
figures; pass your own ``ax`` to draw into a pyplot figure instead.
"""

import math
import os

import numpy as np

from keras_optzoo.playground.functions import get_function

__all__ = [
    "plot_contour",
    "plot_losses",
    "plot_comparison",
    "animate",
    "summary_table",
]

_LOG_RANGE = 1e-7  # lowest log contour level, relative to the plotted range
_N_LEVELS = 30


def _as_list(trajectories):
    if isinstance(trajectories, dict):
        return list(trajectories.values())
    if hasattr(trajectories, "points"):  # a single Trajectory
        return [trajectories]
    return list(trajectories)


def _new_axes(ax, figsize=(6.5, 5.5)):
    if ax is not None:
        return ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig.add_subplot()


def _colors(n):
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def _label(trajectory):
    if trajectory.diverged:
        return f"{trajectory.name} (diverged at step {trajectory.diverged_at})"
    return trajectory.name


def _draw_surface(ax, function, resolution=250):
    from matplotlib.colors import LogNorm

    xx, yy, zz = function.grid(resolution)
    if function.log_levels:
        # Log-spaced levels of the height above the lowest grid value, so that
        # surfaces whose minimum is not 0 (Goldstein-Price) work as well.
        gap = zz - zz.min()
        top = float(gap.max())
        low = top * _LOG_RANGE
        levels = np.geomspace(low, top, _N_LEVELS)
        norm = LogNorm(vmin=low, vmax=top)
        gap = np.maximum(gap, low)
        ax.contourf(xx, yy, gap, levels=levels, norm=norm, cmap="viridis", extend="min")
        ax.contour(xx, yy, gap, levels=levels, norm=norm, colors="k",
                   linewidths=0.3, alpha=0.35)
    else:
        ax.contourf(xx, yy, zz, levels=_N_LEVELS, cmap="viridis")
        ax.contour(xx, yy, zz, levels=_N_LEVELS, colors="k", linewidths=0.3,
                   alpha=0.35)
    (x0, x1), (y0, y1) = function.domain
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    if function.minima:
        mins = np.asarray(function.minima)
        ax.plot(mins[:, 0], mins[:, 1], ls="", marker="*", ms=16, color="gold",
                mec="k", mew=0.8, zorder=5)


def _legend(ax, function, trajectories, colors):
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=c, lw=2, label=_label(t))
        for t, c in zip(trajectories, colors)
    ]
    handles.append(Line2D([], [], ls="", marker="o", color="w", mec="k", label="start"))
    handles.append(Line2D([], [], ls="", marker="X", color="w", mec="k", label="end"))
    if function.minima:
        handles.append(Line2D([], [], ls="", marker="*", ms=12, color="gold", mec="k",
                              label="global minimum"))
    ax.legend(handles=handles, loc="best", fontsize="small", framealpha=0.85)


def plot_contour(function, trajectories, ax=None):
    """Draw the surface as filled contours with every trajectory on top.

    Args:
        function: A `Surface` or its registry name.
        trajectories: A dict of `Trajectory` (as `compare` returns), a list of
            them, or a single one.
        ax: A matplotlib Axes to draw into; a new Agg figure is made if `None`.

    Returns:
        The Axes.
    """
    function = get_function(function)
    trajectories = _as_list(trajectories)
    ax = _new_axes(ax)
    _draw_surface(ax, function)
    colors = _colors(len(trajectories))
    for t, c in zip(trajectories, colors):
        pts = t.finite_points
        if len(pts) == 0:
            continue
        ax.plot(pts[:, 0], pts[:, 1], color=c, lw=1.6, marker=".", ms=3, zorder=3)
        ax.plot(*pts[0], marker="o", ms=8, color=c, mec="k", zorder=4)
        ax.plot(*pts[-1], marker="X", ms=10, color=c, mec="k", zorder=4)
    _legend(ax, function, trajectories, colors)
    ax.set_title(function.name)
    return ax


def _curve(trajectory, function):
    """Values to plot against the step: the gap to f* when it is known."""
    if function is not None and function.minimum_value is not None:
        pts = trajectory.finite_points
        return function.numpy(pts[:, 0], pts[:, 1]) - function.minimum_value
    end = trajectory.steps + 1 if not trajectory.diverged else trajectory.diverged_at
    return np.asarray(trajectory.losses[:end], dtype=np.float64)


def plot_losses(trajectories, ax=None, function=None):
    """Plot the loss against the step for each trajectory.

    Args:
        trajectories: A dict, list or single `Trajectory`.
        ax: Axes to draw into; a new Agg figure is made if `None`.
        function: Optional surface. When it has a known minimum value f*, the
            curve shows ``f(x, y) - f*`` recomputed in float64 at the recorded
            points, which stays meaningful right down to the minimum.

    The y axis is logarithmic when the plotted values are positive (exact
    zeros are left out); otherwise it is linear.
    """
    function = None if function is None else get_function(function)
    trajectories = _as_list(trajectories)
    ax = _new_axes(ax)
    curves = [_curve(t, function) for t in trajectories]
    values = np.concatenate([c for c in curves if len(c)] or [np.zeros(0)])
    values = values[np.isfinite(values)]
    log_y = len(values) > 0 and values.min() >= 0 and values.max() > 0
    for t, c, color in zip(trajectories, curves, _colors(len(trajectories))):
        steps = np.arange(len(c))
        if log_y:
            c = np.where(c > 0, c, np.nan)
        ax.plot(steps, c, color=color, lw=1.6, label=_label(t))
        if t.diverged and len(c):
            ax.plot(steps[-1], c[-1], marker="x", ms=9, mew=2, color=color)
    if log_y:
        ax.set_yscale("log")
    gap = function is not None and function.minimum_value is not None
    ax.set_ylabel("f(x, y) − f*" if gap else "f(x, y)")
    ax.set_xlabel("step")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title("loss" + (" gap to the minimum" if gap else ""))
    return ax


def plot_comparison(function, trajectories, path, dpi=110):
    """Save contour paths and loss curves side by side as a PNG.

    Returns:
        The path written.
    """
    from matplotlib.figure import Figure

    function = get_function(function)
    fig = Figure(figsize=(13, 5.5), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[1.1, 1])
    plot_contour(function, trajectories, ax=left)
    plot_losses(trajectories, ax=right, function=function)
    fig.savefig(path, dpi=dpi, format="png")
    return os.fspath(path)


def animate(function, trajectories, path, frames=60, fps=15, dpi=80):
    """Write an animated GIF of the trajectories moving over the contours.

    Frames are spread evenly over the longest trajectory; a trajectory that
    stopped early (diverged) stays at its last finite point.

    Returns:
        The path written.
    """
    from matplotlib.animation import PillowWriter
    from matplotlib.figure import Figure

    function = get_function(function)
    trajectories = _as_list(trajectories)
    frames = max(int(frames), 2)
    fig = Figure(figsize=(6.5, 5.5), layout="constrained")
    ax = fig.add_subplot()
    _draw_surface(ax, function)
    colors = _colors(len(trajectories))
    lines, heads = [], []
    for t, c in zip(trajectories, colors):
        pts = t.finite_points
        if len(pts):
            ax.plot(*pts[0], marker="o", ms=8, color=c, mec="k", zorder=4)
        (line,) = ax.plot([], [], color=c, lw=1.6, zorder=3)
        (head,) = ax.plot([], [], marker="o", ms=7, color=c, mec="k", zorder=4)
        lines.append(line)
        heads.append(head)
    _legend(ax, function, trajectories, colors)
    longest = max((t.steps for t in trajectories), default=0)
    writer = PillowWriter(fps=fps)
    with writer.saving(fig, os.fspath(path), dpi):
        for i in range(frames):
            step = int(math.ceil(i * longest / (frames - 1)))
            for t, line, head in zip(trajectories, lines, heads):
                pts = t.finite_points[: step + 1]
                if len(pts) == 0:
                    continue
                line.set_data(pts[:, 0], pts[:, 1])
                head.set_data([pts[-1, 0]], [pts[-1, 1]])
            ax.set_title(f"{function.name} — step {step}")
            writer.grab_frame()
    return os.fspath(path)


def _fmt(value, spec=".4g"):
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return format(value, spec)


def summary_table(function, trajectories, tol=1e-2):
    """Markdown table: final loss, distance to the nearest minimum, speed.

    Columns: optimizer, learning rate, final loss, distance to the nearest
    global minimum, first step within `tol` of a minimum, and status.
    """
    function = get_function(function)
    trajectories = _as_list(trajectories)
    header = (
        f"| optimizer | learning rate | final loss | distance to minimum "
        f"| first step within {tol:g} | status |"
    )
    rows = [header, "|---|---:|---:|---:|---:|---|"]
    for t in trajectories:
        s = t.summary(function, tol)
        lr = t.learning_rate
        lr = _fmt(float(np.float32(lr)), ".3g") if isinstance(lr, float) else _fmt(lr)
        distance = "n/a" if not function.minima else _fmt(s.distance, ".3g")
        status = f"diverged at step {s.diverged_at}" if t.diverged else "ok"
        rows.append(
            f"| {t.name} | {lr} | {_fmt(s.final_loss)} | {distance} "
            f"| {_fmt(s.first_within_tol, 'd')} | {status} |"
        )
    return "\n".join(rows) + "\n"
