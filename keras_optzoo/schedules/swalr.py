"""SWALR: torch.optim.swa_utils.SWALR as a closed form of the step."""

from keras import ops

from keras_optzoo.schedules import base


@base.register
class SWALR(base.Schedule):
    r"""Anneals the learning rate to a constant `swa_lr`, as
    `torch.optim.swa_utils.SWALR(optimizer, swa_lr, anneal_epochs,
    anneal_strategy)` stepped once per epoch.

    With $e$ the epoch, $A$ = `anneal_epochs` and
    $t = \min(e / \max(1, A), 1)$ ($t = 1$ from the start when $A = 0$):

    $$\eta_e = (1 - \alpha_t)\,\eta_0 + \alpha_t\,\eta_{swa},\qquad
      \alpha_t = \tfrac{1 - \cos(\pi t)}{2}\ \text{(cos)}
      \ \text{or}\ t\ \text{(linear)}$$

    which is what torch's recursive form computes when nothing else changes
    the learning rate. torch's SWALR anneals from the learning rate the
    optimizer has when SWALR starts: here that rate is
    `initial_learning_rate`. In the usual recipe (another schedule until
    epoch `swa_start`, then SWALR), put SWALR behind it with
    `oz.schedules.SequentialLR`; torch's loop

        for epoch in range(epochs):
            train(...)
            if epoch > swa_start: swa_scheduler.step()
            else: scheduler.step()

    trains epoch `e > swa_start` with the rate of
    `SequentialLR([schedule, SWALR(schedule(swa_start + 1), swa_lr)],
    milestones=[swa_start + 1])` (times `steps_per_epoch`).

    Args:
        initial_learning_rate: Float >= 0. The learning rate the annealing
            starts from (torch: the optimizer's `lr` when SWALR starts).
            Required.
        swa_lr: Float >= 0. The learning rate reached after
            `anneal_epochs` epochs and kept. Required.
        anneal_epochs: Int >= 0. Epochs of annealing. Defaults to `10`.
        anneal_strategy: `"cos"` or `"linear"`. Defaults to `"cos"`.
        {steps_per_epoch}
    """

    _config_keys = ("initial_learning_rate", "swa_lr", "anneal_epochs",
                    "anneal_strategy", "steps_per_epoch")

    def __init__(self, initial_learning_rate, swa_lr, anneal_epochs=10,
                 anneal_strategy="cos", steps_per_epoch=1):
        self.initial_learning_rate = base.check_learning_rate(
            initial_learning_rate)
        self.swa_lr = base.check_learning_rate(swa_lr, name="swa_lr")
        self.anneal_epochs = base.check_int("anneal_epochs", anneal_epochs,
                                            low=0)
        self.anneal_strategy = base.check_choice(
            "anneal_strategy", anneal_strategy, ("cos", "linear"))
        self.steps_per_epoch = base.check_steps_per_epoch(steps_per_epoch)

    def _value(self, step):
        start = float(self.initial_learning_rate)
        end = float(self.swa_lr)
        if self.anneal_epochs == 0:
            return ops.full_like(base.to_float(step), end)
        epoch = base.epoch_of(step, self.steps_per_epoch)
        a = base.to_float(ops.minimum(epoch, self.anneal_epochs))
        b = float(self.anneal_epochs)
        if self.anneal_strategy == "cos":
            w_start, w_end = base.cosine_weights(a, b)
        else:
            w_start, w_end = base.linear_weights(a, b)
        return start * w_start + end * w_end
