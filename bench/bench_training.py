"""Training speed at mini-batch 1: rpucircuit against IBM aihwkit 1.2 and plain PyTorch.

What it measures
    Samples per second of SGD training at mini-batch 1 (forward, cross-entropy, backward,
    update per sample) on paper A's FC 784-256-128-10 network and paper B's CNN, for

    * ``ours``     rpucircuit's analog network with paper A's full baseline
                   (:func:`rpucircuit.config.rpu.gokmen_vlasov_2016`: every device
                   non-ideality, DAC/ADC, output noise and bound, noise/bound/update
                   management on, BL 10);
    * ``aihwkit``  aihwkit 1.2 configured the same way: ``SingleRPUConfig`` with
                   ``ConstantStepDevice()`` (its defaults are paper A's tile: dw_min 0.001
                   with 30 % d2d/c2c, bounds ±0.6 with 30 % d2d, up/down d2d 0.01, out_noise
                   0.06, out_bound 12, inp_res 1/126, out_res 1/510, noise management
                   ABS_MAX, bound management ITERATIVE, update management on), BL 10, and
                   the paper mapping: ``digital_bias=False`` (bias as an analog column),
                   no tile split (``max_input_size = max_output_size = 0``);
    * ``torch``    the same network in plain floating-point PyTorch (``torch.optim.SGD``);
    * ``ours-k0.1``, ``ours-ir``, ``ours-calibrated`` (``--variants``, all three by
                   default) rpucircuit on a variant of ``ours``'s array model: half-select
                   k = 0.1; IR-drop maps for both reads (``models/gokmen_vlasov_2016.h5``);
                   the model calibrated from the circuit
                   (``models/gokmen_vlasov_2016_calibrated.h5``: k ≈ 0.1, IR-drop maps,
                   per-tile noise, read gain, input transfer curve). A table gives each
                   as a fraction of ``ours``'s speed in the same invocation (the peers
                   have no half-select);
    * ``ours-1t``  (with ``--with-single-thread``) rpucircuit with its tiles built with
                   ``update_thread=False``: :class:`~rpucircuit.model.tile.AnalogTile` runs
                   large updates on a background thread by default (nogil kernels, so
                   rpucircuit may use a second core); this contender keeps everything on one
                   thread like the peers.

    η = 0.01 everywhere. Inputs are MNIST training images (pixel/255) when
    :func:`rpucircuit.training.data.load_mnist` can provide them, else synthetic sparse images with
    MNIST's statistics (about 19 % non-zero pixels); the table says which.

How it measures fairly (``docs/peers.md`` says more)
    Every run is a fresh worker process: warm-up samples first (imports, numba compilation,
    allocation), then a timed stretch of ``n`` samples. rpucircuit trains them as
    ``rpucircuit train`` does, in runs of 200 samples per ``Network.train_steps`` call (one
    sample after another: mini-batch 1); the peers one step per sample, as they train at
    mini-batch 1. Contenders run interleaved
    (ours, aihwkit, torch, ours, aihwkit, torch, ...) ``--reps`` times and the table shows
    medians and the ratios of the medians. Each run records how much CPU *other* processes
    used during the timed stretch (machine busy time from ``/proc/stat`` minus the worker's
    own CPU time, in cores) and how much of a core the worker itself got; a run whose
    worker got less than ``--min-own-cpu`` (default 0.9) of a core was preempted by other
    processes: it is marked DISTURBED and repeated (``--retries``), and wall-clock medians
    use the clean runs. Samples per CPU-second of the worker is a second figure, robust to
    disturbance and fair between contenders that use different numbers of threads; the
    table gives both ratios.
    Every worker runs with ``OPENBLAS_NUM_THREADS=1`` (and the same for OMP/MKL) so BLAS
    threads never fight torch's; torch uses ``--torch-threads`` intra-op threads (default 1:
    on this 2-core machine a second torch thread made batch-1 training 10× slower whenever
    the other core was busy). The table's "own CPU" column shows how many cores each
    contender used (rpucircuit above 1 when its update thread overlapped the next sample).
    ``OPENBLAS_CORETYPE``/``OPENBLAS_L2_SIZE`` (set on some machines to work around old
    OpenBLAS builds) are removed for every worker alike unless ``--keep-openblas-env`` is
    given. The peak RSS of each worker (``ru_maxrss``) is recorded; for the CNN the target
    is < 1 GiB.

Peers
    aihwkit and torch are benchmark-only extras; build them once with
    ``bash bench/setup_peers.sh`` (into ``bench/.cache/peers-venv``). Without them the
    benchmark says so and still prints rpucircuit's own figures.

Usage
    python bench/bench_training.py                      # both networks, 5 interleaved reps
    python bench/bench_training.py --nets fc --reps 3
    python bench/bench_training.py --peer-python /path/to/python   # another peer build
    python bench/bench_training.py --profile --nets fc --warm 20 --fc-n 200   # where time goes
    python bench/bench_training.py --profile --update-thread off --variants ir  # and with maps
    python bench/bench_training.py --profile-maps --nets fc --fc-n 200  # maps in the update

The output starts with the CPU model (from ``/proc/cpuinfo``); ``--json`` files record it
too, beside the runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from rpucircuit.model.network import Network

HERE = Path(__file__).resolve().parent
DEFAULT_PEER_PYTHON = HERE / ".cache" / "peers-venv" / "bin" / "python"
LR = 0.01
# (warm-up samples, timed samples) per network; sized for about a second (ours) to five
# seconds (aihwkit) per run here. The CNN's 1,500 timed samples let rpucircuit's update
# thread settle (with 400 its medians spread by ±15 % between runs on this machine).
DEFAULT_SIZES = {"fc": (300, 3000), "cnn": (100, 1500)}
VARIANTS = {
    "k0.1": "the preset with device.k_half_select = 0.1 (half-select on every tile)",
    "ir": "the preset with IR-drop maps for both reads (models/gokmen_vlasov_2016.h5)",
    "calibrated": "models/gokmen_vlasov_2016_calibrated.h5 (k ≈ 0.1, IR-drop maps, per-tile "
    "noise, read gain, input transfer curve)",
}
"""rpucircuit-only variants of ``ours`` (``--variants``): contender ``ours-NAME``."""
CONTENDERS = ("ours", "ours-1t", *(f"ours-{v}" for v in VARIANTS), "aihwkit", "torch")


# --------------------------------------------------------------------------- data


def _synthetic_images(n: int, rng: np.random.Generator) -> np.ndarray:
    """Sparse 28×28 images in [0, 1] with about MNIST's fraction of non-zero pixels."""
    yy, xx = np.mgrid[0:28, 0:28]
    out = np.zeros((n, 28, 28), dtype=np.float32)
    for i in range(n):
        img = np.zeros((28, 28))
        for _ in range(3):  # three random strokes (Gaussian blobs along a line)
            cy, cx = rng.uniform(7, 21, size=2)
            dy, dx = rng.normal(0, 4, size=2)
            for t in np.linspace(-1, 1, 6):
                img += np.exp(-((yy - cy - t * dy) ** 2 + (xx - cx - t * dx) ** 2) / 3.0)
        img = np.clip(img - 0.35, 0, None)
        out[i] = np.minimum(img / max(img.max(), 1e-9), 1.0)
    return out.reshape(n, 784)


def load_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """``n`` training images (flat, float32 in [0, 1]), labels, and a word on the source."""
    try:
        from rpucircuit.training.data import load_mnist

        mnist = load_mnist()
        x, y = mnist.train(n)
        x = np.ascontiguousarray(x, dtype=np.float32).reshape(len(x), 784)
        return x, np.asarray(y, np.int64), "MNIST"
    except Exception as exc:  # any failure: fall back to synthetic data and say why
        rng = np.random.default_rng(seed)
        x = _synthetic_images(n, rng)
        y = rng.integers(0, 10, size=n)
        return x, y, f"synthetic (MNIST unavailable: {type(exc).__name__})"


# --------------------------------------------------------------------------- machine


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``, else ``lscpu``, else the platform's word)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"


# --------------------------------------------------------------------------- workers


def _cpu_busy_jiffies() -> int:
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    vals = [int(v) for v in fields]
    # user nice system idle iowait irq softirq steal guest guest_nice
    return sum(vals[:8]) - vals[3] - vals[4]


def _timed_loop(step: Any, n_warm: int, n: int, n_data: int, run: Any = None) -> dict[str, float]:
    """Warm up on ``n_warm`` samples, then time ``n``: ``step(i)`` trains sample ``i`` (of
    ``n_data``, in turn) and returns its loss; or, if given (``step`` then None),
    ``run(i, count)`` trains samples i, i+1, ..., i+count−1 (wrapping at ``n_data``) and
    returns their loss sum, called on runs of ``TRAIN_RUN`` samples, as ``rpucircuit
    train`` trains (the peers' workers, which have no rpucircuit, give ``step`` only)."""
    import resource

    def train(first: int, count: int) -> float:
        total = 0.0
        if run is None:
            for i in range(count):
                total += step((first + i) % n_data)
            return total
        from rpucircuit.training.loop import TRAIN_RUN

        for s0 in range(0, count, TRAIN_RUN):
            total += run((first + s0) % n_data, min(TRAIN_RUN, count - s0))
        return total

    train(0, n_warm)
    hz = os.sysconf("SC_CLK_TCK")
    busy0 = _cpu_busy_jiffies()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    loss_sum = train(n_warm, n)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    busy = (_cpu_busy_jiffies() - busy0) / hz
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "samples_per_s": n / wall,
        "samples_per_cpu_s": n / max(cpu, 1e-9),
        "wall_s": wall,
        "own_cpu_cores": cpu / wall,
        "other_cpu_cores": max(busy - cpu, 0.0) / wall,
        "peak_rss_mib": rss_kib / 1024.0,
        "mean_loss": loss_sum / n,
    }


def _build_ours(net: str, variant: str, update_thread: bool) -> Network:
    """rpucircuit's network on paper A's preset (``variant`` ""), or on a variant of
    :data:`VARIANTS`, built as ``rpucircuit train`` builds it (seed 1)."""
    from rpucircuit.config.training import ModelSpec, Setting, TrainingConfig
    from rpucircuit.training.loop import build_network

    models = HERE.parent / "models"
    spec = {
        "": ModelSpec(preset="gokmen_vlasov_2016"),
        "k0.1": ModelSpec(
            preset="gokmen_vlasov_2016",
            settings=(Setting(path="device.k_half_select", value=0.1),),
        ),
        "ir": ModelSpec(file=str(models / "gokmen_vlasov_2016.h5")),
        "calibrated": ModelSpec(file=str(models / "gokmen_vlasov_2016_calibrated.h5")),
    }[variant]
    cfg = TrainingConfig(network="fc" if net == "fc" else "cnn", model=spec, seed=1)
    return build_network(cfg, rng=np.random.default_rng(1), update_thread=update_thread)


def _worker_ours(
    net: str,
    x: np.ndarray,
    y: np.ndarray,
    n_warm: int,
    n: int,
    update_thread: bool,
    variant: str = "",
) -> dict[str, Any]:
    network = _build_ours(net, variant, update_thread)
    labels = np.asarray(y, dtype=np.int64)

    def run(i: int, count: int) -> float:  # as rpucircuit train: runs through train_steps
        idx = np.arange(i, i + count) % len(x)
        return float(network.train_steps(x[idx], labels[idx], LR).sum())

    return _timed_loop(None, n_warm, n, len(x), run)


def _torch_model(net: str, analog: bool) -> Any:
    import torch
    from torch import nn

    if analog:
        from aihwkit.nn import AnalogConv2d, AnalogLinear
        from aihwkit.simulator.configs import ConstantStepDevice, SingleRPUConfig

        cfg = SingleRPUConfig(device=ConstantStepDevice())
        cfg.update.desired_bl = 10
        cfg.mapping.digital_bias = False
        cfg.mapping.max_input_size = 0
        cfg.mapping.max_output_size = 0

        def linear(i: int, o: int) -> Any:
            return AnalogLinear(i, o, rpu_config=cfg)

        def conv(i: int, o: int, k: int) -> Any:
            return AnalogConv2d(i, o, k, rpu_config=cfg)
    else:

        def linear(i: int, o: int) -> Any:
            return nn.Linear(i, o)

        def conv(i: int, o: int, k: int) -> Any:
            return nn.Conv2d(i, o, k)

    torch.manual_seed(1)
    if net == "fc":
        return nn.Sequential(
            linear(784, 256), nn.Sigmoid(), linear(256, 128), nn.Sigmoid(), linear(128, 10)
        )
    return nn.Sequential(
        nn.Unflatten(1, (1, 28, 28)),
        conv(1, 16, 5),
        nn.Tanh(),
        nn.MaxPool2d(2),
        conv(16, 32, 5),
        nn.Tanh(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        linear(512, 128),
        nn.Tanh(),
        linear(128, 10),
    )


def _worker_torch(
    net: str, x: np.ndarray, y: np.ndarray, n_warm: int, n: int, analog: bool, threads: int
) -> dict[str, Any]:
    import torch
    import torch.nn.functional as func

    torch.set_num_threads(threads)
    model = _torch_model(net, analog)
    if analog:
        from aihwkit.optim import AnalogSGD

        opt: Any = AnalogSGD(model.parameters(), lr=LR)
        opt.regroup_param_groups(model)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=LR)
    xt = torch.from_numpy(x)
    yt = torch.from_numpy(y)

    def step(i: int) -> float:
        opt.zero_grad()
        loss = func.cross_entropy(model(xt[i : i + 1]), yt[i : i + 1])
        loss.backward()
        opt.step()
        return float(loss.detach())

    out = _timed_loop(step, n_warm, n, len(x))
    out["torch_threads"] = torch.get_num_threads()
    return out


def _profile_table(rows: list[tuple[str, str, float]], total_us: float) -> None:
    """Print (what, tile shape, µs per sample) rows and the rest of ``total_us``."""
    print("| call | tile (out × in) | µs per sample | share |\n|---|---|---|---|")
    for what, shape, us in sorted(rows, key=lambda r: -r[2]):
        print(f"| {what} | {shape} | {us:.1f} | {us / total_us:.0%} |")
    rest = total_us - sum(us for _, _, us in rows)
    print(
        f"| rest: layers, network, Python glue, timing wrappers | — | {rest:.1f} | "
        f"{rest / total_us:.0%} |"
    )


def profile_ours(
    nets: list[str],
    x: np.ndarray,
    y: np.ndarray,
    sizes: dict[str, Any],
    *,
    update_thread: bool = True,
    variants: tuple[str, ...] = ("",),
) -> None:
    """Where rpucircuit's time goes, µs per sample: per tile call and tile shape.

    Both networks train by default through fused compiled calls that hold several tiles'
    work each, so they cannot be split per tile; each such call is timed as a line of its
    own. The profile steps one sample at a time (``Network.train_step``, the call that times
    each part; training runs ``train_steps``, whose runs of samples spare the fully
    connected network most of the per-call cost counted here as "rest"). The fully connected
    network's step is one call (``kernels.dense_train_step``: every tile's reads and
    updates); it is then profiled again with the fused step off (``Network.fused = False``,
    the bit-identical layer-by-layer path, slower) to show the per-tile split. The CNN's
    step is one call too (``cnn_train_steps``, the whole step) unless conv2's tile hands
    its half-select updates to the update thread; it is then profiled again through the
    per-sample calls of :mod:`rpucircuit.model.kernels.convnet` that the network makes in
    that case, each timed (``conv_forward``: conv1's read; ``pool_conv_forward``:
    pool1 and conv2's read; ``pool_dense_forward``: pool2 and fc1's read;
    ``cnn_backward``: loss, every backward read and every update), with ``Tanh.forward``
    of the activations between them. Where the thread takes conv2's half-select updates,
    the network steps through those calls, ``cnn_backward`` split in two
    (``cnn_backward_reads``, then ``cnn_backward_updates`` with every update but conv2's)
    and conv2's tile updating between them (an ``update`` line). ``update_thread``:
    whether the tiles may run large updates on their background thread (as in training).
    ``variants``: which networks, ``""`` for paper A's preset or names from :data:`VARIANTS`
    (built as in the benchmark).
    """
    from rpucircuit.model import kernels, layers
    from rpucircuit.model.kernels import convnet
    from rpucircuit.model.tile import AnalogTile

    spent: dict[tuple[str, str], float] = {}
    tile_methods = ("forward", "backward", "update", "finish_update")
    originals = {name: getattr(AnalogTile, name) for name in tile_methods}
    fused_original = kernels.dense_train_step
    cnn_calls = {
        "conv_forward": "CNN fused: conv1 read",
        "pool_conv_forward": "CNN fused: pool1 + conv2 read",
        "pool_dense_forward": "CNN fused: pool2 + fc1 read",
        "cnn_train_steps": "CNN fused: whole steps (not splittable)",
        "cnn_backward": "CNN fused: loss, backward reads, updates",
        "cnn_backward_reads": "CNN fused: loss, backward reads (update thread on)",
        "cnn_backward_updates": "CNN fused: updates but conv2's (update thread on)",
    }
    cnn_originals = {name: getattr(convnet, name) for name in cnn_calls}
    tanh_original = layers.Tanh.forward

    def timed(name: str) -> Any:
        method = originals[name]

        def call(self: Any, *a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return method(self, *a, **kw)
            finally:
                key = (name, f"{self.out_size} × {self.in_size}")
                spent[key] = spent.get(key, 0.0) + time.perf_counter() - t

        return call

    def timed_call(function: Any, what: str, shape: str = "all") -> Any:
        def call(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return function(*a, **kw)
            finally:
                spent[(what, shape)] = spent.get((what, shape), 0.0) + time.perf_counter() - t

        return call

    def run(network: Any, net: str, name: str, label: str) -> None:
        xs = [np.ascontiguousarray(v, dtype=np.float64) for v in x]
        warm, n = sizes[net]
        for i in range(warm):
            network.train_step(xs[i % len(xs)], int(y[i % len(xs)]), LR)
        for tile in network.tiles:
            tile.finish_update()
        spent.clear()
        t0 = time.perf_counter()
        c0 = time.process_time()
        for i in range(n):
            network.train_step(xs[(warm + i) % len(xs)], int(y[(warm + i) % len(xs)]), LR)
        for tile in network.tiles:  # a deferred update still running belongs to this stretch
            tile.finish_update()
        total = (time.perf_counter() - t0) / n * 1e6
        cpu = (time.process_time() - c0) / n * 1e6
        print(
            f"\n{name}, {label}: {total:.0f} µs per sample ({1e6 / total:,.0f} samples/s); "
            f"CPU {cpu:.0f} µs per sample ({1e6 / cpu:,.0f} samples per CPU-second)"
        )
        rows = [(what, shape, sec / n * 1e6) for (what, shape), sec in spent.items()]
        _profile_table(rows, total)

    # compiled functions that call the CNN calls timed below (cnn_train_steps,
    # cnn_backward) are compiled or loaded first: compiled once those are wrapped in Python
    # functions, they would not compile
    if "cnn" in nets:
        sample = np.ascontiguousarray(x[0], dtype=np.float64)
        for variant in variants:
            network = _build_ours("cnn", variant, update_thread)
            network.train_steps(sample[None], y[:1], LR)
            network._cnn_train_step(sample, int(y[0]), LR)
    for name in tile_methods:
        setattr(AnalogTile, name, timed(name))
    kernels.dense_train_step = timed_call(
        fused_original, "fused step (all tiles: reads, loss, updates; not splittable)"
    )
    for name, what in cnn_calls.items():
        setattr(convnet, name, timed_call(cnn_originals[name], what))
    layers.Tanh.forward = timed_call(tanh_original, "Tanh.forward", "—")  # type: ignore[method-assign]
    try:
        for variant in variants:
            for net in nets:

                def fresh(net: str = net, variant: str = variant) -> Any:
                    return _build_ours(net, variant, update_thread)

                name = f"{net} ({VARIANTS[variant] if variant else 'paper A preset'})"
                network = fresh()
                if getattr(network, "fused", False):
                    run(network, net, name, "fused compiled calls (the default)")
                    if net == "fc":
                        network = fresh()
                        network.fused = False
                        run(network, net, name, "layer-by-layer path (fused off, per-tile split)")
                    elif not network._cnn_threaded():
                        network = fresh()
                        network.train_step = network._cnn_train_step  # type: ignore[method-assign]
                        run(network, net, name, "the same calls one by one (per-call split)")
                else:
                    run(network, net, name, "layer-by-layer path")
        if update_thread:
            print(
                "\nWith the tile update thread on (the default), a deferred update's wait is"
                " counted where the tile is next used\n(its next read or finish_update), not"
                " in update; --update-thread off gives a per-call split."
            )
    finally:
        for name, method in originals.items():
            setattr(AnalogTile, name, method)
        kernels.dense_train_step = fused_original
        for name, function in cnn_originals.items():
            setattr(convnet, name, function)
        layers.Tanh.forward = tanh_original  # type: ignore[method-assign]


def profile_update_maps(net: str, x: np.ndarray, y: np.ndarray, n: int, reps: int = 5) -> None:
    """The IR-drop maps' cost in the update kernel alone: ``n`` training samples of the
    ``ir`` variant (layer-by-layer path, no update thread) record every tile's (x, δ)
    pairs; then, per tile, the same pairs are replayed through ``kernels.pulsed_update``
    on copies of the tile's arrays with only the map switches changed (no map, forward
    map, both maps kept, each map loaded from the (out, in) map or computed from its line
    terms), interleaved ``reps`` times; the table gives the median CPU µs per update and
    the coincidences per update (the same in all: the maps change what the read copies
    hold, not the pulses)."""
    import rpucircuit.model.tile as tile_module
    from rpucircuit.model import kernels

    network = _build_ours(net, "ir", False)
    network.fused = False
    recorded: dict[tuple[int, ...], list[tuple[np.ndarray, np.ndarray]]] = {}
    hook = "patch_update"  # the update kernel call AnalogTile.update makes
    original = getattr(tile_module, hook)

    def record(*a: Any) -> Any:
        recorded.setdefault(a[6].shape[1:], []).append((a[0].copy(), a[1].copy()))
        return original(*a)

    setattr(tile_module, hook, record)
    try:
        xs = [np.ascontiguousarray(v, dtype=np.float64) for v in x]
        for i in range(n):
            network.train_step(xs[i % len(xs)], int(y[i % len(xs)]), LR)
    finally:
        setattr(tile_module, hook, original)
    modes = {  # (use_att, bwd_att, att_lines)
        "no map": (0.0, kernels.BWD_NONE, 0.0),
        "forward map": (1.0, kernels.BWD_NONE, 0.0),
        "both maps kept": (1.0, kernels.BWD_KEPT, 0.0),
        "forward terms": (1.0, kernels.BWD_NONE, 1.0),
        "both terms kept": (1.0, kernels.BWD_KEPT, 1.0),
    }
    print(f"\n{net}, ir variant, update kernel alone (CPU µs per update, median of {reps}):")
    print("| tile (out × in) | coincidences per update | " + " | ".join(modes) + " |")
    print("|---|---|" + "---|" * len(modes))
    for tile in network.tiles:
        ka = tile.kernel_arrays()
        pairs = recorded.get(ka.w.shape[1:], [])
        if not pairs or tile.config.update.pulse_type == "exact":
            continue
        upd = tile.config.update
        times: dict[str, list[float]] = {m: [] for m in modes}
        coincidences = 0
        for _ in range(reps):
            for mode, (use_att, bwd, lines) in modes.items():
                dp = ka.dp.copy()
                dp[kernels.DP_USE_ATT] = use_att
                dp[kernels.DP_BWD_ATT] = bwd
                dp[kernels.DP_ATT_LINES] = lines  # the ir variant's tiles hold the terms
                w, wread, wread_b = ka.w.copy(), ka.wread.copy(order="K"), ka.wread_b.copy()
                state = ka.state.copy()
                coincidences = 0
                c0 = time.process_time()
                for xb, db in pairs:
                    coincidences += kernels.pulsed_update(
                        xb, db, LR, upd.bl, upd.update_management, tile.config.device.dw_min,
                        w, ka.par, ka.par_lines, dp, wread, ka.att, wread_b, ka.att_b,
                        ka.att_lines, state,
                    )  # fmt: skip
                times[mode].append((time.process_time() - c0) / len(pairs) * 1e6)
        cells = " | ".join(f"{statistics.median(times[m]):.1f}" for m in modes)
        print(f"| {tile.out_size} × {tile.in_size} | {coincidences / len(pairs):,.0f} | {cells} |")


def worker_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--contender", choices=CONTENDERS, required=True)
    p.add_argument("--net", choices=("fc", "cnn"), required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--warm", type=int, required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--torch-threads", type=int, default=1)
    a = p.parse_args(argv)
    with np.load(a.data) as d:
        x, y = d["x"], d["y"]
    if a.contender.startswith("ours"):
        variant = "" if a.contender in ("ours", "ours-1t") else a.contender[len("ours-") :]
        res = _worker_ours(
            a.net, x, y, a.warm, a.n, update_thread=a.contender != "ours-1t", variant=variant
        )
    else:
        res = _worker_torch(
            a.net, x, y, a.warm, a.n, analog=a.contender == "aihwkit", threads=a.torch_threads
        )
    print("RESULT " + json.dumps(res))
    return 0


# --------------------------------------------------------------------------- driver


def _peer_status(peer_python: Path) -> tuple[bool, bool, str]:
    """(torch available, aihwkit available, description) for the peer interpreter."""
    if not peer_python.exists():
        return False, False, f"{peer_python} not found (run: bash bench/setup_peers.sh)"
    code = (
        "import json\nout={}\n"
        "try:\n import torch; out['torch']=torch.__version__\nexcept Exception as e: "
        "out['torch_err']=repr(e)\n"
        "try:\n import aihwkit; out['aihwkit']=aihwkit.__version__\nexcept Exception as e: "
        "out['aihwkit_err']=repr(e)\nprint(json.dumps(out))"
    )
    r = subprocess.run([str(peer_python), "-c", code], capture_output=True, text=True)
    try:
        info = json.loads(r.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return False, False, f"{peer_python} failed: {r.stderr.strip()[-300:]}"
    desc = f"torch {info.get('torch', 'absent')}, aihwkit {info.get('aihwkit', 'absent')}"
    return "torch" in info, "aihwkit" in info, desc


def _run_worker(
    python: str, contender: str, net: str, data: Path, warm: int, n: int, args: Any
) -> dict[str, Any] | None:
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[var] = "1"
    if not args.keep_openblas_env:
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
    cmd = [python, str(Path(__file__).resolve()), "--worker", "--contender", contender,
           "--net", net, "--data", str(data), "--warm", str(warm), "--n", str(n),
           "--torch-threads", str(args.torch_threads)]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in r.stdout.splitlines():
        if line.startswith("RESULT "):
            res: dict[str, Any] = json.loads(line[len("RESULT ") :])
            return res
    print(f"  !! {contender}/{net} failed (exit {r.returncode}):\n{r.stderr.strip()[-2000:]}")
    return None


def _print_variant_ratios(all_runs: dict[str, dict[str, list[dict[str, Any]]]], cpu: str) -> None:
    """The variants' speed as a fraction of ``ours`` in the same invocation (medians of
    clean runs for wall time, of every run for CPU time)."""
    rows = []
    for net, runs in all_runs.items():
        base = runs.get("ours") or []
        if not base:
            continue
        pool = [r for r in base if r["clean"]] or base
        wall0 = statistics.median(r["samples_per_s"] for r in pool)
        cpu0 = statistics.median(r["samples_per_cpu_s"] for r in base)
        for c, rs in runs.items():
            if not (rs and c.startswith("ours-") and c[len("ours-") :] in VARIANTS):
                continue
            pool = [r for r in rs if r["clean"]] or rs
            wall = statistics.median(r["samples_per_s"] for r in pool)
            per_cpu = statistics.median(r["samples_per_cpu_s"] for r in rs)
            rows.append(
                f"| {net} | {c} | {wall:,.0f} | {wall / wall0:.2f} | {per_cpu:,.0f} | "
                f"{per_cpu / cpu0:.2f} |"
            )
    if rows:
        print(f"\nVariants against ours in this run (CPU: {cpu}); 1.00 = as fast as ours:")
        print(
            "| network | variant | median samples/s | this / ours (wall) "
            "| median samples per CPU-s | this / ours (CPU) |\n|---|---|---|---|---|---|"
        )
        print("\n".join(rows))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        return worker_main(argv[1:])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--nets", default="fc,cnn", help="comma list of fc, cnn")
    p.add_argument("--reps", type=int, default=5, help="interleaved repetitions per contender")
    p.add_argument("--peer-python", type=Path, default=DEFAULT_PEER_PYTHON)
    p.add_argument("--torch-threads", type=int, default=1)
    p.add_argument("--keep-openblas-env", action="store_true")
    p.add_argument("--fc-n", type=int, default=DEFAULT_SIZES["fc"][1], help="timed FC samples")
    p.add_argument("--cnn-n", type=int, default=DEFAULT_SIZES["cnn"][1], help="timed CNN samples")
    p.add_argument(
        "--warm",
        type=int,
        default=None,
        help="warm-up samples per run for every network (default: FC "
        f"{DEFAULT_SIZES['fc'][0]}, CNN {DEFAULT_SIZES['cnn'][0]})",
    )
    p.add_argument("--json", type=Path, help="also write all runs as JSON here")
    p.add_argument(
        "--min-own-cpu",
        type=float,
        default=0.9,
        help="a run whose worker got less of a core than this is disturbed and repeated",
    )
    p.add_argument("--retries", type=int, default=2, help="repeats of a disturbed run")
    p.add_argument(
        "--with-single-thread",
        action="store_true",
        help="also run rpucircuit with its background update thread off (ours-1t)",
    )
    p.add_argument(
        "--variants",
        default=None,
        help="comma list of rpucircuit variants run as contenders ours-NAME, each reported as "
        f"a ratio to ours in the same run ({', '.join(VARIANTS)}; 'none': no variants; "
        "default: all); with --profile: also profile these (default: none)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="only profile rpucircuit: time per tile call and shape (in this process)",
    )
    p.add_argument(
        "--profile-maps",
        action="store_true",
        help="only time the update kernel of the ir variant per tile with and without its "
        "IR-drop maps (same recorded samples; --fc-n/--cnn-n training samples recorded)",
    )
    p.add_argument(
        "--update-thread",
        choices=("on", "off"),
        default="on",
        help="with --profile: the tiles' background update thread (off: per-call split)",
    )
    args = p.parse_args(argv)
    nets = [n.strip() for n in args.nets.split(",") if n.strip()]
    bad = sorted(set(nets) - {"fc", "cnn"})
    if bad or not nets:
        p.error(f"--nets {args.nets!r}: give a comma list of fc, cnn")
    for name in ("reps", "fc_n", "cnn_n"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.warm is not None and args.warm < 0:
        p.error("--warm must be >= 0")
    variants = (
        ([] if args.profile else list(VARIANTS))
        if args.variants is None
        else []
        if args.variants == "none"
        else [v.strip() for v in args.variants.split(",") if v.strip()]
    )
    bad = sorted(set(variants) - set(VARIANTS))
    if bad:
        p.error(f"--variants {args.variants!r}: give a comma list of {', '.join(VARIANTS)}")
    sizes = {
        net: (DEFAULT_SIZES[net][0] if args.warm is None else args.warm, n)
        for net, n in (("fc", args.fc_n), ("cnn", args.cnn_n))
    }
    cpu = cpu_model()
    print(f"CPU: {cpu}; cores: {os.cpu_count()}")

    if args.profile_maps:
        x, y, source = load_data(max(sizes[net][1] for net in nets), seed=0)
        print(f"data: {source}")
        for net in nets:
            profile_update_maps(net, x, y, sizes[net][1])
        return 0
    if args.profile:
        x, y, source = load_data(max(w + n for w, n in sizes.values()), seed=0)
        print(f"data: {source}; profiling rpucircuit only (OPENBLAS env of this process)")
        profile_ours(
            nets,
            x,
            y,
            sizes,
            update_thread=args.update_thread == "on",
            variants=("", *variants),
        )
        return 0
    has_torch, has_aihwkit, peer_desc = _peer_status(args.peer_python)
    print(f"peers: {peer_desc}")
    if not has_aihwkit:
        print("NOTE: aihwkit is ABSENT: no aihwkit figures or ratios (bash bench/setup_peers.sh)")
    if not has_torch:
        print("NOTE: torch is ABSENT: no floating-point PyTorch figures or ratios")
    contenders = (
        ["ours"]
        + (["ours-1t"] if args.with_single_thread else [])
        + [f"ours-{v}" for v in variants]
        + (["aihwkit"] if has_aihwkit else [])
        + (["torch"] if has_torch else [])
    )
    n_data = max(w + n for w, n in sizes.values())
    x, y, source = load_data(n_data, seed=0)
    print(f"data: {source}, {n_data} samples; cores: {os.cpu_count()}; lr {LR}; batch 1")
    print(
        f"OPENBLAS_CORETYPE for workers: "
        f"{os.environ.get('OPENBLAS_CORETYPE') if args.keep_openblas_env else '(unset)'}"
    )

    all_runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.npz"
        np.savez(data, x=x, y=y)
        for net in nets:
            warm, n = sizes[net]
            runs: dict[str, list[dict[str, Any]]] = {c: [] for c in contenders}
            for rep in range(args.reps):
                for c in contenders:
                    py = sys.executable if c.startswith("ours") else str(args.peer_python)
                    for attempt in range(args.retries + 1):
                        res = _run_worker(py, c, net, data, warm, n, args)
                        if res is None:
                            break
                        res["clean"] = res["own_cpu_cores"] >= args.min_own_cpu
                        runs[c].append(res)
                        flag = "" if res["clean"] else "  DISTURBED"
                        print(f"  {net} rep {rep + 1}.{attempt} {c:8s} "
                              f"{res['samples_per_s']:7.0f} samples/s "
                              f"{res['samples_per_cpu_s']:7.0f} per CPU-s"
                              f"  own CPU {res['own_cpu_cores']:.2f}"
                              f"  other CPU {res['other_cpu_cores']:.2f}"
                              f"  RSS {res['peak_rss_mib']:.0f} MiB  loss {res['mean_loss']:.3f}"
                              f"{flag}", flush=True)  # fmt: skip
                        if res["clean"]:
                            break
            all_runs[net] = runs
    print(
        f"\nA run is clean when its worker got >= {args.min_own_cpu:.2f} of a core (otherwise it"
        " was preempted and is repeated);\nsamples/s medians use clean runs only (all runs if"
        " none was clean); per-CPU-s medians use every run."
    )
    print(
        "\n| network | contender | median samples/s | clean runs | min–max | "
        "median samples per CPU-s | own CPU (cores) | other CPU (cores) | peak RSS MiB "
        "| ours / this (wall) | ours / this (CPU) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for net, runs in all_runs.items():
        med: dict[str, float] = {}
        med_cpu: dict[str, float] = {}
        for c, rs in runs.items():
            if rs:
                pool = [r for r in rs if r["clean"]] or rs
                med[c] = statistics.median(r["samples_per_s"] for r in pool)
                med_cpu[c] = statistics.median(r["samples_per_cpu_s"] for r in rs)
        for c, rs in runs.items():
            if not rs:
                continue
            pool = [r for r in rs if r["clean"]] or rs
            sps = [r["samples_per_s"] for r in pool]
            other = statistics.median(r["other_cpu_cores"] for r in pool)
            own = statistics.median(r["own_cpu_cores"] for r in pool)
            rss = max(r["peak_rss_mib"] for r in rs)
            if c == "ours" or "ours" not in med:
                ratio = ratio_cpu = "—"
            else:
                ratio = f"{med['ours'] / med[c]:.2f}×"
                ratio_cpu = f"{med_cpu['ours'] / med_cpu[c]:.2f}×"
            n_clean = sum(r["clean"] for r in rs)
            print(
                f"| {net} | {c} | {med[c]:,.0f} | {n_clean}/{len(rs)} | "
                f"{min(sps):,.0f}–{max(sps):,.0f} | {med_cpu[c]:,.0f} | {own:.2f} | {other:.2f} | "
                f"{rss:.0f} | {ratio} | {ratio_cpu} |"
            )
    if "cnn" in all_runs and all_runs["cnn"].get("ours"):
        rss = max(r["peak_rss_mib"] for r in all_runs["cnn"]["ours"])
        verdict = "meets" if rss < 1024 else "MISSES"
        print(
            f"\npeak RSS of an rpucircuit CNN training process: {rss:.0f} MiB "
            f"({verdict} the < 1 GiB target)"
        )
    _print_variant_ratios(all_runs, cpu)
    if args.json:
        machine = {"cpu_model": cpu, "cores": os.cpu_count(), "peers": peer_desc}
        args.json.write_text(json.dumps({"machine": machine, "runs": all_runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
