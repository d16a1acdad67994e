"""The Transformer's learning rate (Vaswani et al., 2017), "Noam".

``lr(t) = scale * d_model**-0.5 * min(t**-0.5, t * warmup_steps**-1.5)``: a
linear rise for ``warmup_steps`` steps, then ``1 / sqrt(t)`` decay.
"""

from keras import ops

from keras_optzoo.schedules import base


@base.register
class Noam(base.Schedule):
    """The "Attention Is All You Need" schedule (Noam Shazeer's).

    ``lr = scale * d_model**-0.5 * min(t**-0.5, t * warmup_steps**-1.5)``
    with ``t = s + 1``: the step counts from 1, as the paper's ``step_num``
    does and as the TensorFlow transformer tutorial's ``CustomSchedule``
    (the same formula) is meant to be read, so the first update (optimizer
    step ``s = 0``) uses ``t = 1`` and the rate peaks at ``t = warmup_steps`` (optimizer step
    ``warmup_steps - 1``) at ``scale * (d_model * warmup_steps)**-0.5``.

    The tutorial's class, handed to a Keras optimizer as is, receives the
    0-based ``optimizer.iterations`` and so gives 0 for the first update
    and this schedule's values one step late; this class is that schedule
    with the paper's numbering (``Noam(d, w)(s) == CustomSchedule(d,
    w)(s + 1)``).

    Args:
        d_model: Int >= 1. The model width.
        warmup_steps: Int >= 1. Steps of the linear rise. The paper uses
            `4000`.
        scale: Float >= 0. Constant factor. Defaults to `1.0`.

    References:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017, eq. 3,
        https://arxiv.org/abs/1706.03762
    """

    _config_keys = ("d_model", "warmup_steps", "scale")

    def __init__(self, d_model, warmup_steps, scale=1.0):
        self.d_model = base.check_int("d_model", d_model, low=1)
        self.warmup_steps = base.check_int("warmup_steps", warmup_steps, low=1)
        self.scale = base.check_real("scale", scale, low=0.0)

    @property
    def base_learning_rate(self):
        """``scale``: Noam is torch's ``LambdaLR(optimizer with lr=scale,
        lambda s: d_model**-0.5 * min((s + 1)**-0.5, (s + 1) *
        warmup_steps**-1.5))``, so a param group's rate is relative to
        ``scale``."""
        return float(self.scale)

    def _value(self, step):
        t = base.to_float(step) + 1.0
        peak = self.scale * self.d_model**-0.5
        rising = t * (self.warmup_steps**-1.5)
        return peak * ops.minimum(ops.rsqrt(t), rising)
