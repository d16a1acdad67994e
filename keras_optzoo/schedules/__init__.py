"""torch.optim.lr_scheduler's schedules as pure Keras 3 schedules.

Every class is a ``keras.optimizers.schedules.LearningRateSchedule`` whose
value is a closed-form ``keras.ops`` function of the optimizer step (the
number of updates already applied): it traces under ``jax.jit`` and
``tf.function(jit_compile=True)``, resumes exactly after save/load, and
reproduces the sequence of the torch scheduler of the same name stepped once
per epoch (``steps_per_epoch`` optimizer steps each) or, for CyclicLR and
OneCycleLR, once per batch. Arguments keep torch's names; the base learning
rate that torch reads from the optimizer is the first argument,
``initial_learning_rate``. Every schedule gives that base rate as
``base_learning_rate`` (the composite schedules: their first child's;
``Noam``: ``scale``): ``schedule(step) / schedule.base_learning_rate`` is
the factor that scales every param group's rate, as torch's schedulers
scale each group's ``initial_lr``.

    import keras_optzoo as oz
    schedule = oz.schedules.SequentialLR(
        [oz.schedules.LinearLR(0.1, start_factor=0.01, total_iters=5),
         oz.schedules.CosineAnnealingLR(0.1, T_max=95)],
        milestones=[5],
        steps_per_epoch=len(train_batches),
    )
    oz.schedules.plot(schedule, 100 * len(train_batches))

Hugging Face transformers' warm-up schedules (``ConstantWithWarmup``,
``LinearWithWarmup``, ``CosineWithWarmup``,
``CosineWithHardRestartsWithWarmup``, ``PolynomialWithWarmup``,
``InverseSqrt``, ``CosineWithMinLRWithWarmup``, ``WarmupStableDecay``)
equal the transformers function of the same name with the same arguments,
per optimizer step; ``Noam`` is the Transformer paper's schedule, and
``with_warmup(schedule, warmup_steps)`` puts a warm-up in front of any
schedule:

    schedule = oz.schedules.CosineWithWarmup(3e-4, num_warmup_steps=500,
                                             num_training_steps=10_000)
    # = get_cosine_schedule_with_warmup(AdamW(lr=3e-4), 500, 10_000)

timm's schedulers (``CosineLRScheduler``, ``TanhLRScheduler``,
``PolyLRScheduler``, ``StepLRScheduler``, ``MultiStepLRScheduler``) take
timm's arguments and equal timm's rate at every optimizer step, noise
included (:mod:`keras_optzoo.schedules.timm`):

    schedule = oz.schedules.CosineLRScheduler(
        1e-3, t_initial=300, lr_min=1e-5, warmup_t=5, warmup_lr_init=1e-6,
        steps_per_epoch=len(train_batches))
"""

from keras_optzoo.schedules.composite import ChainedScheduler
from keras_optzoo.schedules.composite import SequentialLR
from keras_optzoo.schedules.cosine import CosineAnnealingLR
from keras_optzoo.schedules.cosine import CosineAnnealingWarmRestarts
from keras_optzoo.schedules.cyclic import CycleMomentum
from keras_optzoo.schedules.cyclic import CyclicLR
from keras_optzoo.schedules.cyclic import OneCycleLR
from keras_optzoo.schedules.decay import ExponentialLR
from keras_optzoo.schedules.decay import MultiStepLR
from keras_optzoo.schedules.decay import PolynomialLR
from keras_optzoo.schedules.decay import StepLR
from keras_optzoo.schedules.hf import ConstantWithWarmup
from keras_optzoo.schedules.hf import CosineWithHardRestartsWithWarmup
from keras_optzoo.schedules.hf import CosineWithMinLRWithWarmup
from keras_optzoo.schedules.hf import CosineWithWarmup
from keras_optzoo.schedules.hf import InverseSqrt
from keras_optzoo.schedules.hf import LinearWithWarmup
from keras_optzoo.schedules.hf import PolynomialWithWarmup
from keras_optzoo.schedules.hf import WarmupStableDecay
from keras_optzoo.schedules.lambda_lr import LambdaLR
from keras_optzoo.schedules.lambda_lr import MultiplicativeLR
from keras_optzoo.schedules.noam import Noam
from keras_optzoo.schedules.plot import plot
from keras_optzoo.schedules.swalr import SWALR
from keras_optzoo.schedules.timm import CosineLRScheduler
from keras_optzoo.schedules.timm import MultiStepLRScheduler
from keras_optzoo.schedules.timm import PolyLRScheduler
from keras_optzoo.schedules.timm import StepLRScheduler
from keras_optzoo.schedules.timm import TanhLRScheduler
from keras_optzoo.schedules.warmup import ConstantLR
from keras_optzoo.schedules.warmup import LinearLR
from keras_optzoo.schedules.with_warmup import WithWarmup
from keras_optzoo.schedules.with_warmup import with_warmup

__all__ = [
    "LambdaLR",
    "MultiplicativeLR",
    "StepLR",
    "MultiStepLR",
    "ConstantLR",
    "LinearLR",
    "ExponentialLR",
    "PolynomialLR",
    "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts",
    "CyclicLR",
    "OneCycleLR",
    "CycleMomentum",
    "SequentialLR",
    "ChainedScheduler",
    "ConstantWithWarmup",
    "LinearWithWarmup",
    "CosineWithWarmup",
    "CosineWithHardRestartsWithWarmup",
    "PolynomialWithWarmup",
    "InverseSqrt",
    "CosineWithMinLRWithWarmup",
    "WarmupStableDecay",
    "Noam",
    "SWALR",
    "CosineLRScheduler",
    "TanhLRScheduler",
    "PolyLRScheduler",
    "StepLRScheduler",
    "MultiStepLRScheduler",
    "with_warmup",
    "WithWarmup",
    "plot",
]
