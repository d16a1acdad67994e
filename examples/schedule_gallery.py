"""Draws every keras-optzoo schedule, as the torch scheduler, transformers
function or timm scheduler of the same name would step it, into one picture
(docs/images/schedules.png by default).

    python examples/schedule_gallery.py [--out PATH] [--steps 100]
"""

import argparse
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402

from keras_optzoo import schedules as S  # noqa: E402


@keras.saving.register_keras_serializable(package="keras_optzoo_examples")
def warm_then_decay(epoch):
    """A traceable LambdaLR function: keras.ops only, no Python `if`."""
    return keras.ops.minimum(1.0, (epoch + 1) / 10.0) * 0.97 ** epoch


def gallery(steps=100):
    """name -> schedule, 100 epochs of 1 step each unless said otherwise."""
    lr = 0.1
    cosine = S.CosineAnnealingLR(lr, T_max=steps // 2)
    return {
        "LambdaLR (warm-up × 0.97^e)": S.LambdaLR(lr, warm_then_decay),
        "MultiplicativeLR (×0.95)": S.MultiplicativeLR(
            lr, lambda e: 0.95 + 0.0 * e),
        "StepLR (30, 0.5)": S.StepLR(lr, step_size=30, gamma=0.5),
        "MultiStepLR ([20, 50, 80])": S.MultiStepLR(lr, [20, 50, 80], 0.3),
        "ConstantLR (1/3, 25)": S.ConstantLR(lr, factor=1 / 3, total_iters=25),
        "LinearLR (0.1→1, 40)": S.LinearLR(lr, start_factor=0.1,
                                            total_iters=40),
        "ExponentialLR (0.97)": S.ExponentialLR(lr, gamma=0.97),
        "PolynomialLR (80, p=2)": S.PolynomialLR(lr, total_iters=80, power=2),
        "CosineAnnealingLR (T_max=50)": cosine,
        "CosineAnnealingWarmRestarts (10, ×2)": S.CosineAnnealingWarmRestarts(
            lr, T_0=10, T_mult=2),
        "CyclicLR (triangular2)": S.CyclicLR(0.01, lr, step_size_up=10,
                                             mode="triangular2"),
        "OneCycleLR": S.OneCycleLR(max_lr=lr, total_steps=steps),
        "SequentialLR (linear warm-up → cosine)": S.SequentialLR(
            [S.LinearLR(lr, start_factor=0.05, total_iters=10),
             S.CosineAnnealingLR(lr, T_max=steps - 10)], milestones=[10]),
        "ChainedScheduler (constant × exp)": S.ChainedScheduler(
            [S.ConstantLR(lr, factor=0.5, total_iters=20),
             S.ExponentialLR(lr, gamma=0.98)]),
        # transformers' schedules, Noam and with_warmup
        "ConstantWithWarmup (10)": S.ConstantWithWarmup(lr, 10),
        "LinearWithWarmup (10, 80)": S.LinearWithWarmup(lr, 10, 80),
        "CosineWithWarmup (10, 80)": S.CosineWithWarmup(lr, 10, 80),
        "CosineWithHardRestartsWithWarmup (3 cycles)":
            S.CosineWithHardRestartsWithWarmup(lr, 10, 90, num_cycles=3),
        "PolynomialWithWarmup (p=2)": S.PolynomialWithWarmup(
            lr, 10, 80, lr_end=0.01, power=2.0),
        "InverseSqrt (10)": S.InverseSqrt(lr, 10),
        "CosineWithMinLRWithWarmup (min 0.02)": S.CosineWithMinLRWithWarmup(
            lr, 10, 80, min_lr=0.02),
        "WarmupStableDecay (10, 50, 30)": S.WarmupStableDecay(
            lr, 10, 30, num_stable_steps=50, decay_type="1-sqrt"),
        "Noam (d_model=512, warm-up 20)": S.Noam(512, 20),
        "with_warmup(ExponentialLR, 15)": S.with_warmup(
            S.ExponentialLR(lr, gamma=0.97), 15, start_factor=0.1),
        # timm's schedulers (t in epochs, one step each)
        "CosineLRScheduler (3 cycles, ×1.5, noise)": S.CosineLRScheduler(
            lr, t_initial=15, lr_min=0.005, cycle_mul=1.5, cycle_decay=0.6,
            cycle_limit=3, warmup_t=5, warmup_lr_init=0.01,
            warmup_prefix=True, noise_range_t=(45, 76), noise_std=0.3),
        "TanhLRScheduler (2 cycles)": S.TanhLRScheduler(
            lr, t_initial=45, cycle_limit=2, cycle_decay=0.5, warmup_t=5,
            warmup_lr_init=0.01, warmup_prefix=True),
        "PolyLRScheduler (power 2, k_decay 1.5)": S.PolyLRScheduler(
            lr, t_initial=steps - 10, power=2.0, k_decay=1.5, warmup_t=10,
            warmup_lr_init=0.005, warmup_prefix=True),
        "StepLRScheduler (2.4, 0.95)": S.StepLRScheduler(
            lr, decay_t=2.4, decay_rate=0.95, warmup_t=3,
            warmup_lr_init=1e-3),
        "MultiStepLRScheduler ([30, 60, 80])": S.MultiStepLRScheduler(
            lr, decay_t=[30, 60, 80], decay_rate=0.3),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description="Draw every schedule.")
    parser.add_argument("--out", default="docs/images/schedules.png")
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    items = gallery(args.steps)
    cols = 4
    rows = -(-len(items) // cols)
    fig = Figure(figsize=(3.2 * cols, 2.3 * rows), layout="constrained")
    axes = fig.subplots(rows, cols).ravel()
    for ax, (title, schedule) in zip(axes, items.items()):
        S.plot(schedule, args.steps, ax=ax)
        ax.set_title(title, fontsize=8.5)
        ax.set_xlabel("")
        ax.set_ylabel("")
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[len(items):]:
        ax.axis("off")
    fig.suptitle("keras_optzoo.schedules: learning rate vs step "
                 "(torch's, transformers' and timm's sequences)",
                 fontsize=11)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
