"""Optimizer step time: keras-optzoo against each backend's native optimizers.

One process per Keras backend (the backend is fixed at import)::

    python -m benchmarks.step_time --backend torch --quick
    python -m benchmarks.step_time --backend jax --out results/jax.json
    python -m benchmarks.step_time --backend torch --wave2 --out \
        benchmarks/results/step_time_wave2_torch.json

What is timed is one optimizer step on precomputed gradients, the way each
framework's training loop runs it:

* torch backend: ``optimizer.apply(grads, variables)`` under
  ``torch.no_grad()`` (as Keras's ``fit`` calls it), against the
  torch-side reference of the algorithm in each variant it has:
  ``torch.optim``'s for-loop, foreach and fused implementations, or
  another package's (timm, lion-pytorch, adabelief-pytorch,
  pytorch-optimizer; ``optimizer.step()`` with ``.grad`` set);
* JAX: ``optimizer.stateless_apply`` under ``jax.jit`` with the variables
  and optimizer state donated, as Keras's ``fit`` runs it, against
  ``optax`` (a jitted update plus ``apply_updates``, donated likewise);
* TensorFlow: ``optimizer.apply`` inside ``tf.function(jit_compile=True)``.

Every zoo optimizer is compared with the Keras built-in of the same name
(whose update rule differs in details documented on each class, but not in
cost). Parameters come as 10 equal tensors for each total size, plus a
"many small tensors" case (1000 tensors of 1000), where per-tensor overhead
dominates. ``--wave2`` selects the optimizers of the second wave (issues 10
and 11) at 1e5 and 1e6 parameters, as 10 matrices each; the peers of every
optimizer are listed in :data:`OPTIMIZERS`.

Timing: warm-up calls (compilation included), then a batch size is
calibrated per candidate so one timed batch lasts >= ``--min-batch-ms``;
the candidates of one case are timed in interleaved rounds (rotating the
order), so that load from other processes spreads over all of them. Each
result is the median over rounds of the per-step time, with the min and
max. The process pins its math libraries to ``--threads`` threads (default
1) to keep the numbers comparable on a shared machine.
"""

import argparse
import dataclasses
import importlib
import os
import platform
import statistics
import subprocess
import sys
import time

from benchmarks import write_json

SIZES = [10_000, 100_000, 1_000_000, 10_000_000, 30_000_000]
QUICK_SIZES = [10_000, 100_000, 1_000_000]
TENSORS_PER_SIZE = 10
MANY_SMALL = (1000, 1000)  # tensors, elements each
#: --quick on JAX/TF: XLA compiles a 1000-variable step in ~10-20 s per
#: candidate, so the many-small case keeps to these optimizers there
QUICK_MANY_SMALL_COMPILED = ("sgd_momentum", "adam")
LEARNING_RATE = 1e-3


# ------------------------------------------------------------------- table
@dataclasses.dataclass(frozen=True)
class Peer:
    """A torch-style reference optimizer: ``make(params)`` returns an object
    whose ``step()`` reads each parameter's ``.grad`` and whose ``state``
    maps parameters to their state tensors. ``sparse_grad``: it takes the
    gradients as sparse COO tensors of rows (torch.optim.SparseAdam)."""

    impl: str
    make: object
    sparse_grad: bool = False


@dataclasses.dataclass(frozen=True)
class Entry:
    """One benchmarked optimizer: the zoo class and kwargs, the Keras
    built-in of the same algorithm (class name and kwargs, or None), the
    torch-side references (:class:`Peer`) and the optax factory
    (``() -> (impl label, GradientTransformation)``, or None)."""

    zoo: str
    zoo_kwargs: dict = dataclasses.field(default_factory=dict)
    keras: str = None
    keras_kwargs: dict = dataclasses.field(default_factory=dict)
    torch: tuple = ()
    optax: object = None
    #: the algorithm wants matrices (factored moments, Newton-Schulz): the
    #: 10-tensor cases use 2-D tensors for it (--wave2 does for all)
    matrices: bool = False


def _torch_optim(cls_name, **kwargs):
    """torch.optim.<cls_name>: its for-loop, foreach and fused variants (a
    variant this torch lacks fails to build and is left out)."""
    def variant(flags):
        def make(params):
            import torch

            return getattr(torch.optim, cls_name)(
                params, lr=LEARNING_RATE, **kwargs, **flags)
        return make

    return (Peer("torch.optim (for-loop)", variant({"foreach": False})),
            Peer("torch.optim (foreach)", variant({"foreach": True})),
            Peer("torch.optim (fused)", variant({"fused": True})))


def _timm(module):
    """``timm.optim.<module>`` without running timm's ``__init__`` (it
    imports torchvision): tests/reference/external.py's loader."""
    try:
        from tests.reference.external import timm_optim
    except ImportError:  # run from elsewhere than the repository root
        sys.path.insert(0, os.path.dirname(os.path.dirname(
            os.path.abspath(__file__))))
        from tests.reference.external import timm_optim
    return timm_optim(module)


def _reference(label, load, foreach=False, **kwargs):
    """Peers of a reference class ``load()`` (imported when first built):
    one, or with ``foreach`` its for-loop and foreach implementations."""
    def variant(flags):
        def make(params):
            return load()(params, lr=LEARNING_RATE, **kwargs, **flags)
        return make

    if not foreach:
        return (Peer(label, variant({})),)
    return (Peer(f"{label} (for-loop)", variant({"foreach": False})),
            Peer(f"{label} (foreach)", variant({"foreach": True})))


def _attr(module, name):
    return lambda: getattr(importlib.import_module(module), name)


def _timm_cls(module, name):
    return lambda: getattr(_timm(module), name)


def _quiet_adabelief():
    """adabelief-pytorch's AdaBelief without the notices it prints."""
    import contextlib
    import io

    from adabelief_pytorch import AdaBelief

    def make(params, **kwargs):
        with contextlib.redirect_stdout(io.StringIO()):
            return AdaBelief(params, print_change_log=False, **kwargs)
    return make


class MuonAndAdamW:
    """torch.optim.Muon on the 2-D tensors and torch.optim.AdamW (the zoo
    Muon's default ``adamw_*`` arguments) on the others, as the zoo's Muon
    routes them; torch's Muon refuses tensors that are not 2-D."""

    def __init__(self, params, lr=LEARNING_RATE):
        import torch

        params = list(params)
        matrices = [p for p in params if p.ndim == 2]
        others = [p for p in params if p.ndim != 2]
        self.optimizers = []
        if matrices:
            self.optimizers.append(torch.optim.Muon(matrices, lr=lr))
        if others:
            self.optimizers.append(torch.optim.AdamW(
                others, lr=lr, eps=1e-8, weight_decay=1e-2))
        self.state = {k: v for opt in self.optimizers
                      for k, v in opt.state.items()}

    def step(self):
        for opt in self.optimizers:
            opt.step()
        self.state = {k: v for opt in self.optimizers
                      for k, v in opt.state.items()}


class NorMuonGroups:
    """pytorch-optimizer's NorMuon with its ``use_muon`` flag set per
    tensor as the zoo's NorMuon routes them (2+ dimensions: NorMuon, the
    others its AdamW); the zoo's defaults are the reference's."""

    def __init__(self, params, lr=LEARNING_RATE):
        import pytorch_optimizer

        params = list(params)
        groups = [{"params": [p for p in params if p.ndim >= 2],
                   "use_muon": True},
                  {"params": [p for p in params if p.ndim < 2],
                   "use_muon": False}]
        self.opt = pytorch_optimizer.NorMuon(
            [g for g in groups if g["params"]], lr=lr)
        self.state = self.opt.state

    def step(self):
        self.opt.step()


def _optax(name, **kwargs):
    """optax's (or else optax.contrib's) ``name``, as a lazy factory."""
    def make():
        import optax
        import optax.contrib

        if hasattr(optax, name):
            return "optax", getattr(optax, name)(LEARNING_RATE, **kwargs)
        return "optax.contrib", getattr(optax.contrib, name)(LEARNING_RATE,
                                                             **kwargs)
    return make


def _schedulefree(name, **kwargs):
    """schedulefree's ``name`` in train mode (it refuses to step in eval
    mode, the mode it starts in), for-loop and foreach."""
    def load():
        cls = getattr(importlib.import_module("schedulefree"), name)

        def make(params, **kw):
            opt = cls(params, **kw)
            opt.train()
            return opt
        return make

    return _reference("schedulefree 1.4.1", load, foreach=True, **kwargs)


def _first_wave(zoo, keras, torch_name, optax_name, **kwargs):
    """zoo, Keras built-in, torch.optim and optax with the same kwargs."""
    return Entry(zoo, dict(kwargs), keras, dict(kwargs),
                 _torch_optim(torch_name, **kwargs),
                 _optax(optax_name, **kwargs))


#: name -> :class:`Entry`. Every peer runs the zoo's algorithm with the
#: zoo's arguments in its own spelling (the references exactly, checked by
#: ``--check``; optax's and Keras's variants differ in details written in
#: each zoo class's docstring, not in cost).
OPTIMIZERS = {
    "sgd": _first_wave("SGD", "SGD", "SGD", "sgd"),
    "sgd_momentum": _first_wave("SGD", "SGD", "SGD", "sgd", momentum=0.9),
    "adagrad": _first_wave("Adagrad", "Adagrad", "Adagrad", "adagrad"),
    "rmsprop": _first_wave("RMSprop", "RMSprop", "RMSprop", "rmsprop"),
    "adadelta": _first_wave("Adadelta", "Adadelta", "Adadelta", "adadelta"),
    "adam": _first_wave("Adam", "Adam", "Adam", "adam"),
    "adamw": _first_wave("AdamW", "AdamW", "AdamW", "adamw",
                         weight_decay=1e-2),
    "nadam": _first_wave("NAdam", "Nadam", "NAdam", "nadam"),
    "adamax": _first_wave("Adamax", "Adamax", "Adamax", "adamax"),
    "radam": Entry("RAdam", torch=_torch_optim("RAdam"),
                   optax=_optax("radam")),
    # second wave (issue 10 item 11, issue 11 item 5)
    "asgd": Entry("ASGD", torch=_torch_optim("ASGD")),
    "rprop": Entry("Rprop", torch=_torch_optim("Rprop"),
                   optax=_optax("rprop")),
    # optax factors only dimensions >= 128 by default; torch any matrix
    "adafactor": Entry("Adafactor", keras="Adafactor",
                       torch=_torch_optim("Adafactor"),
                       optax=_optax("adafactor", min_dim_size_to_factor=1),
                       matrices=True),
    # issue 19 (speed wave 3): factored moments as transformers' and
    # came-pytorch's (for-loops only); an external rate for HFAdafactor
    # (relative_step=False; the parameter scale on, transformers' default)
    "hfadafactor": Entry("HFAdafactor", {"relative_step": False},
                         torch=_reference(
        "transformers", _attr("transformers.optimization", "Adafactor"),
        relative_step=False), matrices=True),
    "came": Entry("CAME", torch=_reference(
        "came-pytorch", _attr("came_pytorch", "CAME")), matrices=True),
    "muon": Entry("Muon", keras="Muon",
                  torch=(Peer("torch.optim", MuonAndAdamW),),
                  optax=_optax("muon"), matrices=True),
    # dense gradients; SparseAdam is given them as sparse rows (all rows)
    # issue 19: the Muon family's other members (all matrices: every
    # tensor takes the matrix rule), against their references
    "normuon": Entry("NorMuon", torch=(
        Peer("pytorch-optimizer", lambda params: NorMuonGroups(params)),),
        matrices=True),
    "adamuon": Entry("AdaMuon", torch=_reference(
        "timm", _timm_cls("muon", "Muon"), algo="adamuon"), matrices=True),
    "lazyadam": Entry("LazyAdam", torch=(Peer(
        "torch.optim SparseAdam", _reference(
            "", _attr("torch.optim", "SparseAdam"))[0].make,
        sparse_grad=True),)),
    "lion": Entry("Lion", keras="Lion",
                  torch=_reference("lion-pytorch",
                                   _attr("lion_pytorch", "Lion")),
                  optax=_optax("lion", weight_decay=0.0)),
    "lamb": Entry("Lamb", keras="Lamb", keras_kwargs={"weight_decay": 1e-2},
                  torch=_reference("timm", _timm_cls("lamb", "Lamb"),
                                   foreach=True),
                  optax=_optax("lamb", eps=1e-6, weight_decay=1e-2)),
    # weight decay > 0: timm's Lars skips the trust ratio without it
    "lars": Entry("Lars", {"momentum": 0.9, "weight_decay": 1e-4},
                  torch=_reference("timm", _timm_cls("lars", "Lars"),
                                   foreach=True, momentum=0.9,
                                   weight_decay=1e-4),
                  optax=_optax("lars", momentum=0.9, weight_decay=1e-4,
                               eps=1e-8)),
    "yogi": Entry("Yogi", optax=_optax("yogi")),
    "novograd": Entry("NovoGrad",
                      torch=_reference("timm NvNovoGrad",
                                       _timm_cls("nvnovograd", "NvNovoGrad")),
                      optax=_optax("novograd", b1=0.95, b2=0.98, eps=1e-8)),
    "adabelief": Entry("AdaBelief",
                       torch=_reference("adabelief-pytorch",
                                        _quiet_adabelief),
                       optax=_optax("adabelief")),
    "adan": Entry("Adan", torch=_reference("timm", _timm_cls("adan", "Adan"),
                                           foreach=True),
                  optax=_optax("adan")),
    "adopt": Entry("ADOPT", torch=_reference(
        "pytorch-optimizer", _attr("pytorch_optimizer", "ADOPT"),
        foreach=True), optax=_optax("adopt")),
    "ademamix": Entry("AdEMAMix", torch=_reference(
        "pytorch-optimizer", _attr("pytorch_optimizer", "AdEMAMix"),
        foreach=True), optax=_optax("ademamix")),
    # caution=True (issue 19): pytorch-optimizer's ADOPT has no foreach
    # step with `cautious` (it runs its for-loop), its AdEMAMix has one
    "adopt_cautious": Entry("ADOPT", {"caution": True}, torch=_reference(
        "pytorch-optimizer", _attr("pytorch_optimizer", "ADOPT"),
        cautious=True)),
    "ademamix_cautious": Entry("AdEMAMix", {"caution": True},
                               torch=_reference(
        "pytorch-optimizer", _attr("pytorch_optimizer", "AdEMAMix"),
        foreach=True, cautious=True)),
    "adamp": Entry("AdamP", torch=_reference(
        "timm", _timm_cls("adamp", "AdamP"))),
    "sgdp": Entry("SGDP", {"momentum": 0.9}, torch=_reference(
        "timm", _timm_cls("sgdp", "SGDP"), momentum=0.9)),
    "madgrad": Entry("MADGRAD", torch=_reference(
        "timm", _timm_cls("madgrad", "MADGRAD")), optax=_optax("madgrad")),
    "laprop": Entry("LaProp", torch=_reference(
        "timm", _timm_cls("laprop", "LaProp"), foreach=True)),
    # issue 20 (neither optax nor Keras has them); timm's Mars has a
    # for-loop only, optimi's Triton kernels need a GPU
    "mars": Entry("MARS", torch=_reference("timm", _timm_cls("mars",
                                                             "Mars"))),
    "stableadamw": Entry("StableAdamW", torch=_reference(
        "torch-optimi", _attr("optimi", "StableAdamW"), foreach=True,
        triton=False)),
    # one step size for all variables (issue 20): d0 = 1e-2 so that --check
    # sees the parameters move at this learning rate (a multiplier on d)
    "prodigy": Entry("Prodigy", {"d0": 1e-2}, torch=_reference(
        "prodigyopt", _attr("prodigyopt", "Prodigy"), d0=1e-2),
        optax=_optax("prodigy", estim_lr0=1e-2)),
    "dadaptadam": Entry("DAdaptAdam", {"d0": 1e-2}, torch=_reference(
        "dadaptation", _attr("dadaptation", "DAdaptAdam"), d0=1e-2),
        optax=_optax("dadapt_adamw", estim_lr0=1e-2)),
    "dadaptsgd": Entry("DAdaptSGD", {"d0": 1e-2}, torch=_reference(
        "dadaptation", _attr("dadaptation", "DAdaptSGD"), d0=1e-2)),
    # third wave (issue 20): Keras's ScheduleFreeAdamW and optax's compute
    # other variants (see ScheduleFreeAdamW's docstring), not in cost
    "schedulefree_adamw": Entry(
        "ScheduleFreeAdamW", keras="ScheduleFreeAdamW",
        torch=_schedulefree("AdamWScheduleFree"),
        optax=_optax("schedule_free_adamw")),
    "schedulefree_sgd": Entry(
        "ScheduleFreeSGD", torch=_schedulefree("SGDScheduleFree"),
        optax=_optax("schedule_free_sgd")),
    "schedulefree_radam": Entry(
        "ScheduleFreeRAdam", torch=_schedulefree("RAdamScheduleFree")),
    # issue 22: 8-bit state, against bitsandbytes (CPU)
    "adamw8bit": Entry("AdamW8bit", torch=_reference(
        "bitsandbytes", _attr("bitsandbytes.optim", "AdamW8bit"))),
    "lion8bit": Entry("Lion8bit", torch=_reference(
        "bitsandbytes", _attr("bitsandbytes.optim", "Lion8bit"))),
    "ademamix8bit": Entry("AdEMAMix8bit", torch=_reference(
        "bitsandbytes", _attr("bitsandbytes.optim", "AdEMAMix8bit"))),
}

#: the default selection (first wave, ``run_all``'s tables)
FIRST_WAVE = ("sgd", "sgd_momentum", "adagrad", "rmsprop", "adadelta",
              "adam", "adamw", "nadam", "adamax", "radam")
#: --wave2: the optimizers of issues 10 and 11 (and issue 20's MARS and
#: StableAdamW; the third wave's factored and Muon variants and the cautious
#: entries), at these sizes, each as 10 2-D tensors (so Adafactor
#: factors and Muon orthogonalises every one)
WAVE2 = ("adamax", "radam", "asgd", "rprop", "adafactor", "muon",
         "lazyadam", "lion", "lamb", "lars", "yogi", "novograd", "adabelief",
         "adan", "adopt", "ademamix", "adamp", "sgdp", "madgrad", "laprop",
         "mars", "stableadamw", "adopt_cautious", "ademamix_cautious",
         "hfadafactor", "came", "normuon", "adamuon")
WAVE2_SIZES = [100_000, 1_000_000]
#: issue 20's optimizers with one learned step size (run them with
#: ``--wave2 --optimizers prodigy dadaptadam dadaptsgd``)
DADAPT = ("prodigy", "dadaptadam", "dadaptsgd")
#: issue 20's schedule-free optimizers (``--optimizers`` with ``--wave2``'s
#: sizes and 2-D tensors)
SCHEDULE_FREE = ("schedulefree_adamw", "schedulefree_sgd",
                 "schedulefree_radam")

#: --small (torch): the small/medium sizes of issue 14, where the fixed
#: per-step cost dominates, against torch.optim's fastest variant
SMALL_SIZES = [10_000, 100_000]
SMALL_OPTIMIZERS = ("sgd_momentum", "nadam", "rmsprop", "adadelta",
                    "adamax", "radam", "adam", "adagrad")

#: implementation labels; the first group is ours, the rest native peers
ZOO_IMPLS = ("zoo", "zoo (foreach)", "zoo (per-variable)", "zoo (retrace)",
             "zoo (lean)")


def _configure_threads(backend, threads):
    """Before importing the backend: pin its thread pools."""
    if backend == "jax" and threads == 1:
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "")
            + " --xla_cpu_multi_thread_eigen=false"
            " intra_op_parallelism_threads=1").strip()
    os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# ------------------------------------------------------------------ timing
class Candidate:
    """One implementation ready to step: ``step()``, ``sync()``.

    ``per_call``: steps one ``step()`` call makes (an epoch of ``fit`` in
    the whole-model benchmarks); samples are per step."""

    def __init__(self, impl, step, sync, state_bytes, workspace_bytes=0,
                 per_call=1, info=None):
        self.impl = impl
        self.step = step
        self.sync = sync
        self.state_bytes = state_bytes
        self.workspace_bytes = workspace_bytes
        self.per_call = per_call
        #: extra fields for the record (the torch update path, ...)
        self.info = info or {}
        self.batch = 1
        self.samples = []


def _timed(candidate, calls):
    start = time.perf_counter()
    for _ in range(calls):
        candidate.step()
    candidate.sync()
    return time.perf_counter() - start


def measure(candidates, rounds, warmup, min_batch_s):
    """Interleaved rounds; fills each candidate's per-step samples.

    The one timing loop of the benchmarks: ``warmup`` calls each, then a
    batch of calls per candidate lasting >= ``min_batch_s`` (0: one call),
    then ``rounds`` rounds that time every candidate's batch in rotating
    order."""
    for c in candidates:
        if warmup:
            _timed(c, warmup)  # compiles, allocates, fills caches
        if min_batch_s > 0:
            elapsed = _timed(c, 1)
            c.batch = max(1, min(1000, int(min_batch_s
                                           / max(elapsed, 1e-7))))
    for r in range(rounds):
        shift = r % len(candidates)
        for c in candidates[shift:] + candidates[:shift]:
            c.samples.append(_timed(c, c.batch) / (c.batch * c.per_call))


def time_epochs(epoch, sync, steps, rounds):
    """:func:`measure` on whole epochs of ``steps`` training steps: one
    warm-up epoch (compiles), then ``rounds`` epochs; :func:`summary` per
    step."""
    c = Candidate("training", epoch, sync, 0, per_call=steps)
    measure([c], rounds, warmup=1, min_batch_s=0)
    return summary(c)


def summary(c):
    ms = [s * 1e3 for s in c.samples]
    return {"median_ms": statistics.median(ms), "min_ms": min(ms),
            "max_ms": max(ms), "rounds": len(ms), "batch": c.batch}


# ---------------------------------------------------------------- backends
def _np_problem(shapes, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    params = [(0.1 * rng.standard_normal(s)).astype("float32")
              for s in shapes]
    grads = [(1e-3 * rng.standard_normal(s)).astype("float32")
             for s in shapes]
    return params, grads


def _keras_state_bytes(opt):
    import numpy as np

    return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize
               for v in opt.variables)


def _zoo(name):
    import keras_optzoo as oz

    entry = OPTIMIZERS[name]
    return getattr(oz, entry.zoo)(learning_rate=LEARNING_RATE,
                                  **entry.zoo_kwargs)


def _keras_builtin(name):
    import keras

    entry = OPTIMIZERS[name]
    if entry.keras is None:
        return None
    return getattr(keras.optimizers, entry.keras)(
        learning_rate=LEARNING_RATE, **entry.keras_kwargs)


def torch_state_bytes(opt):
    """Bytes of a torch-style optimizer's state tensors (``step``
    counters included, as the Keras side counts ``iterations``)."""
    import torch

    return sum(t.numel() * t.element_size()
               for s in opt.state.values() for t in s.values()
               if torch.is_tensor(t))


def torch_reference(peer, params, grads):
    """``peer``'s optimizer on torch copies of ``params`` with ``grads``
    set (as sparse rows where it takes them); None where this torch has
    no such variant. Returns ``(optimizer, tensors)``."""
    import torch

    tensors = [torch.tensor(p, requires_grad=True) for p in params]
    for t, g in zip(tensors, grads):
        g = torch.tensor(g)  # aligned, as the zoo's (keras_candidate)
        t.grad = g.to_sparse(1) if peer.sparse_grad else g
    try:
        opt = peer.make(tensors)
        opt.step()
    except (TypeError, RuntimeError, ValueError) as error:
        # e.g. no fused kernel for this optimizer in this torch
        print(f"  ({peer.impl}: not available: {error})", flush=True)
        return None, None
    return opt, tensors


class Bench:
    """A backend's candidates: ``makers(name, shapes, zoo_variants)`` gives
    ``(impl, make)`` pairs; :meth:`candidates` builds them and runs each
    once (compiling it), leaving out, with a message, any that fails."""

    def makers(self, name, shapes, zoo_variants=True):
        """The zoo's optimizer and the Keras built-in, where there is one
        (``zoo_variants``: the torch backend's update paths, True for all,
        "per-variable" for the default one and the per-variable loop)."""
        out = [("zoo", lambda: self.keras_candidate("zoo", _zoo(name),
                                                    shapes))]
        if OPTIMIZERS[name].keras is not None:
            out.append(("keras", lambda: self.keras_candidate(
                "keras", _keras_builtin(name), shapes)))
        return out

    def candidates(self, name, shapes, zoo_variants=True, failed=None):
        out = []
        for impl, make in self.makers(name, shapes, zoo_variants):
            try:
                c = make()
                if c is not None:
                    _timed(c, 1)
                    out.append(c)
            except Exception as error:  # noqa: BLE001 - reported, not fatal
                message = f"{type(error).__name__}: {error}"[:300]
                print(f"  ({name} {impl}: failed: {message})", flush=True)
                if failed is not None:
                    failed.append({"optimizer": name, "impl": impl,
                                   "error": message})
        return out


class TorchBench(Bench):
    backend = "torch"

    def __init__(self, with_generic=True):
        import torch

        self.torch = torch
        self.with_generic = with_generic

    def keras_candidate(self, impl, opt, shapes, lean=False):
        import keras

        torch = self.torch
        params, grads = _np_problem(shapes)
        # torch-allocated storage (64-byte aligned), as Keras's initializers
        # and the references' torch.tensor copies have: a Variable made from
        # a NumPy array may keep NumPy's 16-byte alignment, which costs
        # AVX-512 kernels up to ~10% (measured: 1.79 against 1.63 ms for an
        # ADOPT-like program at a 16-byte offset)
        variables = [keras.Variable(torch.tensor(p)) for p in params]
        tensors = [torch.tensor(g) for g in grads]
        opt.build(variables)

        if lean:
            from keras_optzoo import fastpath

            if not hasattr(fastpath, "lean_step"):
                return None
            lean_step = fastpath.lean_step(opt, variables)
            if lean_step is None:
                return None

            def step():
                with torch.no_grad():
                    lean_step(tensors)
        else:
            def step():
                with torch.no_grad():
                    opt.apply(tensors, variables)

        workspace, info = 0, {}
        if impl.startswith("zoo"):
            step()  # the workspace exists after a first step
            workspace = opt._multi_tensor.workspace_bytes()
            info["update_path"] = opt.update_path
        return Candidate(impl, step, lambda: None, _keras_state_bytes(opt),
                         workspace, info=info)

    def torch_candidate(self, peer, shapes):
        opt, _ = torch_reference(peer, *_np_problem(shapes))
        if opt is None:
            return None
        return Candidate(peer.impl, opt.step, lambda: None,
                         torch_state_bytes(opt))

    def small_candidates(self, name, shapes):
        """--small: ours (Keras ``apply`` with the per-step retrace of the
        path before issue 14, ``apply`` with replay, and the lean path)
        against torch.optim's foreach and fused variants only."""
        out = []
        for impl, lean in (("zoo (retrace)", False), ("zoo", False),
                           ("zoo (lean)", True)):
            opt = _zoo(name)
            if impl == "zoo (retrace)":
                # the path before replay: _update traced every step, with
                # Python-number scalars (what issue 14 measured)
                opt._multi_tensor.replay = False
                opt._multi_tensor.device_scalars = False
            c = self.keras_candidate(impl, opt, shapes, lean=lean)
            if c is not None:
                out.append(c)
        for peer in OPTIMIZERS[name].torch:
            if peer.impl.endswith(("(foreach)", "(fused)")):
                c = self.torch_candidate(peer, shapes)
                if c is not None:
                    out.append(c)
        return out

    def makers(self, name, shapes, zoo_variants=True):
        out = []
        if zoo_variants == "per-variable":  # --wave2: ours, and before
            modes = (("zoo", None), ("zoo (per-variable)", False))
        elif zoo_variants:
            modes = (("zoo", None), ("zoo (foreach)", "foreach"),
                     ("zoo (per-variable)", False))
        else:
            modes = (("zoo", None),)
        for impl, mode in modes:
            if mode is False and not self.with_generic:
                continue

            def make(impl=impl, mode=mode):
                opt = _zoo(name)
                opt.use_multi_tensor = mode
                return self.keras_candidate(impl, opt, shapes)
            out.append((impl, make))
        if OPTIMIZERS[name].keras is not None:
            out.append(("keras", lambda: self.keras_candidate(
                "keras", _keras_builtin(name), shapes)))
        for peer in OPTIMIZERS[name].torch:
            out.append((peer.impl,
                        lambda peer=peer: self.torch_candidate(peer, shapes)))
        return out

    def check(self, name, shapes, steps=5):
        """Max deviation of each reference peer from the zoo after
        ``steps`` steps from the same start, relative to the zoo's
        movement: that the peers run the zoo's algorithm and arguments."""
        import keras
        import numpy as np

        torch = self.torch
        params, _ = _np_problem(shapes)
        rng = np.random.default_rng(1)
        grads = [[(1e-1 * rng.standard_normal(p.shape)).astype("float32")
                  for p in params] for _ in range(steps)]
        opt = _zoo(name)
        variables = [keras.Variable(p) for p in params]
        for g in grads:
            with torch.no_grad():
                opt.apply([torch.from_numpy(x) for x in g], variables)
        ours = [keras.ops.convert_to_numpy(v) for v in variables]
        scale = max(float(np.max(np.abs(a - p))) for a, p in zip(ours,
                                                                  params))
        out = {}
        for peer in OPTIMIZERS[name].torch:
            # copies: a reference may normalise ``.grad`` in place
            # (schedulefree does), which would change the arrays the next
            # peer reads
            ref, tensors = torch_reference(peer, params,
                                           [g.copy() for g in grads[0]])
            if ref is None:
                continue
            for g in grads[1:]:
                for t, x in zip(tensors, g):
                    x = torch.from_numpy(x.copy())
                    t.grad = x.to_sparse(1) if peer.sparse_grad else x
                ref.step()
            theirs = [t.detach().numpy() for t in tensors]
            out[peer.impl] = max(float(np.max(np.abs(a - b)))
                                 for a, b in zip(ours, theirs)) / scale
        return out


def jax_zoo_step(opt, shapes):
    """The zoo's step as Keras's JAX trainer runs it: ``(fn, args)``, ``fn``
    the jitted ``stateless_apply`` with the variables and the optimizer state
    donated, ``args`` its first arguments (variable values, state, grads)."""
    import jax
    import keras

    params, grads = _np_problem(shapes)
    variables = [keras.Variable(p) for p in params]
    opt.build(variables)

    # Donated inputs in the order of the outputs, as Keras's JAX trainer
    # does (its state tuple goes in and comes out in one order): JAX
    # pairs donated buffers with outputs by shape, in order, and a
    # mismatch makes XLA copy every variable.
    def update(var_values, opt_values, grads):
        return opt.stateless_apply(opt_values, grads, var_values)

    fn = jax.jit(update, donate_argnums=(0, 1))
    return fn, ([v.value for v in variables], [v.value for v in opt.variables],
                [jax.numpy.asarray(g) for g in grads])


def jax_optax_step(name, shapes):
    """optax's step for ``name`` (``OPTIMIZERS[name].optax``), jitted with the
    params and the state donated: ``(impl, fn, args)``, or None where optax
    has no such optimizer."""
    import jax
    import optax

    make = OPTIMIZERS[name].optax
    if make is None:
        return None
    impl, tx = make()
    params, grads = _np_problem(shapes)
    params = [jax.numpy.asarray(p) for p in params]
    # a copy of each state leaf: some (optax.contrib.madgrad's initial
    # point) are the params' own buffers, which cannot be donated twice
    state = jax.tree_util.tree_map(lambda x: jax.numpy.array(x, copy=True),
                                   tx.init(params))

    def update(params, opt_state, grads):
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    fn = jax.jit(update, donate_argnums=(0, 1))
    return impl, fn, (params, state, [jax.numpy.asarray(g) for g in grads])


class JaxBench(Bench):
    backend = "jax"

    def __init__(self):
        import jax

        self.jax = jax

    def keras_candidate(self, impl, opt, shapes):
        jax = self.jax
        fn, args = jax_zoo_step(opt, shapes)
        state = {"vars": args[0], "opt": args[1]}
        grads = args[2]

        def step():
            state["vars"], state["opt"] = fn(state["vars"], state["opt"],
                                             grads)

        return Candidate(impl, step,
                         lambda: jax.block_until_ready(state["vars"]),
                         _keras_state_bytes(opt))

    def optax_candidate(self, name, shapes):
        jax = self.jax
        made = jax_optax_step(name, shapes)
        if made is None:
            return None
        impl, fn, args = made
        state = {"params": args[0], "opt": args[1]}
        grads = args[2]

        def step():
            state["params"], state["opt"] = fn(state["params"], state["opt"],
                                               grads)

        nbytes = sum(leaf.nbytes
                     for leaf in jax.tree_util.tree_leaves(state["opt"]))
        return Candidate(impl, step,
                         lambda: jax.block_until_ready(state["params"]),
                         nbytes)

    def makers(self, name, shapes, zoo_variants=True):
        out = super().makers(name, shapes, zoo_variants)
        if OPTIMIZERS[name].optax is not None:
            out.append(("optax", lambda: self.optax_candidate(name, shapes)))
        return out


class TensorFlowBench(Bench):
    backend = "tensorflow"

    def __init__(self):
        import tensorflow as tf

        self.tf = tf

    def keras_candidate(self, impl, opt, shapes):
        import keras

        tf = self.tf
        params, grads = _np_problem(shapes)
        variables = [keras.Variable(p) for p in params]
        opt.build(variables)
        grads = [tf.constant(g) for g in grads]
        fn = tf.function(lambda g: opt.apply(g, variables), jit_compile=True)
        return Candidate(impl, lambda: fn(grads),
                         lambda: opt.iterations.numpy(),
                         _keras_state_bytes(opt))


# --------------------------------------------------------------------- fit
def fit_benchmark(bench, quick, rounds):
    """Whole ``fit`` of an MLP on synthetic data: time per training step,
    next to the optimizer step alone on the same variables."""
    import keras
    import numpy as np

    steps = 8 if quick else 32
    batch = 128
    rng = np.random.default_rng(0)
    x = rng.standard_normal((steps * batch, 256)).astype("float32")
    y = rng.integers(0, 10, steps * batch).astype("int32")
    impls = [("zoo", lambda: _zoo("adam")), ("keras",
                                             lambda: _keras_builtin("adam"))]
    if bench.backend == "torch":
        def generic():
            opt = _zoo("adam")
            opt.use_multi_tensor = False
            return opt

        impls.insert(1, ("zoo (per-variable)", generic))
    records = []
    for impl, make in impls:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([
            keras.Input((256,)),
            keras.layers.Dense(1024, activation="relu"),
            keras.layers.Dense(1024, activation="relu"),
            keras.layers.Dense(10),
        ])
        opt = make()
        model.compile(
            optimizer=opt,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=bench.backend != "torch")
        fit = time_epochs(lambda: model.fit(x, y, batch_size=batch,
                                            epochs=1, verbose=0),
                          lambda: None, steps, rounds)
        shapes = [tuple(w.shape) for w in model.trainable_weights]
        alone = bench.keras_candidate(impl, make(), shapes)
        measure([alone], rounds, warmup=3, min_batch_s=0.02)
        opt_ms = summary(alone)["median_ms"]
        fit_ms = fit["median_ms"]
        records.append({
            "optimizer": "adam", "impl": impl,
            "n_params": int(sum(np.prod(s) for s in shapes)),
            "fit_step_median_ms": fit_ms, "fit_step_min_ms": fit["min_ms"],
            "fit_step_max_ms": fit["max_ms"], "optimizer_step_ms": opt_ms,
            "optimizer_share": opt_ms / fit_ms,
        })
        print(f"  fit {impl:20s} {fit_ms:8.2f} ms/step, optimizer "
              f"{opt_ms:7.2f} ms ({opt_ms / fit_ms:.0%})", flush=True)
    return records


# -------------------------------------------------------------------- main
def cases(quick, small=False, sizes=None, tensors=TENSORS_PER_SIZE):
    """(label, parameter count, shapes of 1-D tensors) per case: each size
    as ``tensors`` equal tensors."""
    if sizes is None:
        sizes = SMALL_SIZES if small else (QUICK_SIZES if quick else SIZES)
    out = [(f"{_short(n)} params, {tensors} tensors", n,
            [(n // tensors,)] * tensors) for n in sizes]
    if small:
        return out
    count, each = MANY_SMALL
    out.append((f"{_short(count * each)} params, {count} tensors",
                count * each, [(each,)] * count))
    return out


def as_matrices(shapes):
    """Each 1-D shape as the most nearly square matrix of its size
    (100000 -> (250, 400))."""
    out = []
    for (n,) in shapes:
        rows = max(d for d in range(1, int(n ** 0.5) + 1) if n % d == 0)
        out.append((rows, n // rows))
    return out


def _short(n):
    """10000 -> "1e4", 30000000 -> "3e7"."""
    mantissa, exponent = f"{n:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _load():
    try:
        return os.getloadavg()
    except OSError:
        return None


def _ratios(candidates):
    """ours / the fastest torch.optim or reference peer (Keras built-ins
    and optax apart), and ours / each other native peer."""
    ms = {c.impl: summary(c)["median_ms"] for c in candidates}
    ours = {k: v for k, v in ms.items() if k in ZOO_IMPLS}
    native = {k: v for k, v in ms.items() if k not in ZOO_IMPLS}
    references = {k: v for k, v in native.items()
                  if k != "keras" and not k.startswith("optax")}
    parts = []
    if references:
        best = min(references, key=references.get)
        parts += [f"{k}/{best}={v / references[best]:.2f}x"
                  for k, v in ours.items()]
    for k, v in native.items():
        if k not in references:
            parts += [f"zoo/{k}={ms['zoo'] / v:.2f}x"] if "zoo" in ms \
                else []
    return "  ".join(parts)


def run(backend, quick=False, rounds=None, optimizers=None, threads=1,
        min_batch_ms=None, fit=True, small=False, wave2=False, sizes=None,
        tensors=TENSORS_PER_SIZE):
    import keras

    if backend == "torch":
        import torch

        torch.set_num_threads(threads)
        bench = TorchBench()
    elif backend == "jax":
        bench = JaxBench()
    else:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        bench = TensorFlowBench()
    assert keras.backend.backend() == backend
    rounds = rounds or (5 if quick or wave2 else 9)
    min_batch_s = (min_batch_ms or (20 if quick or wave2 else 50)) / 1e3
    result = {
        "backend": backend, "quick": quick, "threads": threads,
        "rounds": rounds, "min_batch_ms": min_batch_s * 1e3,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(),
                    "load_before": _load()},
        "versions": _versions(backend),
        "steps": [], "fit": [], "failed": [],
        "source": _source(),
    }
    result["small"] = small
    result["wave2"] = wave2
    if small:
        default = SMALL_OPTIMIZERS
    else:
        default = WAVE2 if wave2 else FIRST_WAVE
    names = optimizers or list(default)
    if wave2:
        all_cases = cases(quick, sizes=sizes or WAVE2_SIZES, small=True,
                          tensors=tensors)
    else:
        all_cases = cases(quick, small, sizes=sizes, tensors=tensors)
    for label, n_params, shapes in all_cases:
        print(f"[{backend}] {label}", flush=True)
        for name in names:
            if quick and backend != "torch" and len(shapes) > \
                    tensors and name not in QUICK_MANY_SMALL_COMPILED:
                continue
            matrices = wave2 or OPTIMIZERS[name].matrices
            case_shapes = as_matrices(shapes) if matrices else shapes
            if small:
                candidates = bench.small_candidates(name, case_shapes)
            else:
                # --wave2 on torch: the default path and the per-variable
                # loop (what an optimizer not on the multi-tensor path runs)
                candidates = bench.candidates(
                    name, case_shapes,
                    zoo_variants="per-variable" if wave2 else True,
                    failed=result["failed"])
            measure(candidates, rounds, warmup=3, min_batch_s=min_batch_s)
            for c in candidates:
                record = {"case": label, "n_params": n_params,
                          "n_tensors": len(shapes), "optimizer": name,
                          "impl": c.impl,
                          "shape": list(case_shapes[0]),
                          "state_bytes_per_param": c.state_bytes / n_params,
                          "workspace_bytes_per_param":
                              c.workspace_bytes / n_params}
                record.update(c.info)
                record.update(summary(c))
                result["steps"].append(record)
            line = "  ".join(f"{c.impl}={summary(c)['median_ms']:.3f}"
                             for c in candidates)
            print(f"  {name:12s} {line}", flush=True)
            ratios = _ratios(candidates) if small or wave2 else ""
            if ratios:
                print("  " + " " * 12 + " " + ratios, flush=True)
            del candidates
    if fit and not wave2:
        result["fit"] = fit_benchmark(bench, quick, rounds)
    result["machine"]["load_after"] = _load()
    return result


def check(names, steps=5):
    """torch backend: each reference peer against the zoo (see
    :meth:`TorchBench.check`) on small matrices; prints and returns the
    relative deviations."""
    import torch

    torch.set_num_threads(1)
    bench = TorchBench()
    out = {}
    for name in names:
        out[name] = bench.check(name, [(16, 24)] * 3, steps=steps)
        line = "  ".join(f"{k}={v:.1e}" for k, v in out[name].items())
        print(f"  {name:12s} {line or '(no torch reference)'}", flush=True)
    return out


def _source():
    """The commit benchmarked and the files that differed from it (the
    numbers are the working tree's)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"],
                                cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain"], cwd=root,
                                capture_output=True, text=True,
                                check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return None
    changed = sorted(line[3:] for line in status
                     if line[3:].startswith(("keras_optzoo/", "benchmarks/"))
                     and not line[3:].startswith("benchmarks/results/"))
    return {"commit": commit, "changed": changed}


def _versions(backend):
    import keras

    out = {"keras": keras.__version__}
    if backend == "torch":
        import torch

        out["torch"] = torch.__version__
    elif backend == "jax":
        import jax
        import optax

        out["jax"] = jax.__version__
        out["optax"] = optax.__version__
    else:
        import tensorflow as tf

        out["tensorflow"] = tf.__version__
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", required=True,
                        choices=["torch", "jax", "tensorflow"])
    parser.add_argument("--quick", action="store_true",
                        help="sizes up to 1e6 and fewer rounds")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--min-batch-ms", type=float, default=None)
    parser.add_argument("--optimizers", nargs="*", default=None,
                        choices=list(OPTIMIZERS))
    parser.add_argument("--no-fit", action="store_true")
    parser.add_argument("--small", action="store_true",
                        help="torch: 1e4 and 1e5 parameters in 10 tensors, "
                        "ours (apply and the lean path) against "
                        "torch.optim's foreach and fused variants only "
                        "(implies --no-fit)")
    parser.add_argument("--wave2", action="store_true",
                        help="the second-wave optimizers (issues 10 and "
                        "11) at 1e5 and 1e6 parameters in 10 2-D tensors, "
                        "against their reference implementations, optax "
                        "and the Keras built-ins (implies --no-fit)")
    parser.add_argument("--sizes", nargs="*", type=float, default=None,
                        help="parameter counts instead of the mode's "
                        "(each as 10 tensors), e.g. --sizes 1e3 for a smoke "
                        "test")
    parser.add_argument("--tensors", type=int, default=None,
                        help="tensors per size instead of 10 (e.g. "
                        "--backend tensorflow --optimizers adam --sizes 3.3e6 "
                        "--tensors 100: issue 19's TF case)")
    parser.add_argument("--check", action="store_true",
                        help="torch: run each reference peer and the zoo 5 "
                        "steps from one start and print their relative "
                        "deviation (that the peers compute the zoo's "
                        "algorithm), then exit")
    parser.add_argument("--out", default=None,
                        help="JSON file for the results")
    args = parser.parse_args(argv)
    _configure_threads(args.backend, args.threads)
    names = args.optimizers or (list(WAVE2) if args.wave2 else None)
    if args.check:
        if args.backend != "torch":
            parser.error("--check runs on --backend torch")
        check(names or list(OPTIMIZERS))
        return
    result = run(args.backend, quick=args.quick, rounds=args.rounds,
                 optimizers=names, threads=args.threads,
                 min_batch_ms=args.min_batch_ms,
                 fit=not (args.no_fit or args.small), small=args.small,
                 wave2=args.wave2,
                 sizes=[int(n) for n in args.sizes] if args.sizes else None,
                 tensors=args.tensors or TENSORS_PER_SIZE)
    write_json(result, args.out)


if __name__ == "__main__":
    main()
