"""Microbenchmark of the behavioral RPU tile: µs per forward / backward / update call.

For every array of the papers' networks (paper A FC 784-256-128-10, paper B CNN) it times
one call of each operation under the full paper-A baseline (7-bit DAC, σ = 0.06 noise,
α = 12, 9-bit ADC, noise and bound management, BL = 10 stochastic update with update
management, d2d and c2c variation) and, for comparison, the floating-point preset. Conv
arrays are timed with the number of patches one image gives (n MVMs / n updates per call).
It then times the compiled kernels against the plain numpy reference implementations
(``kernels.reference_read`` and ``kernels.reference_update``) and prints their ratio.

Timing: each figure is the best of ``--repeats`` runs of ``--calls`` calls (perf_counter),
which filters out interference from other processes on a shared machine; the load average
is printed so a disturbed run can be recognized.

    python bench/bench_tile.py            # all arrays, reference ratio on 256x785
    python bench/bench_tile.py --quick    # fewer calls
    python bench/bench_tile.py --networks # + whole-network training, update thread off/on

``--networks`` trains paper A's FC network and paper B's CNN (paper-A baseline tiles,
η = 0.01, synthetic MNIST-like images: 19 % of the pixels lit) at mini-batch 1 in this
process, alternating runs of two identical networks built with the tiles' update thread off
and on (``update_thread=False``/``True``, see ``docs/model-api.md``), and prints the median
samples/s of each and their ratio. The thread only helps when the second core is free:
compare the load average printed. The per-call figures are taken with the thread off (each
update runs in place, so its time is the kernel's).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np

from rpucircuit.config import rpu
from rpucircuit.model import kernels
from rpucircuit.model.tile import AnalogTile, io_vector

# (name, out, in, patches per image): paper A FC arrays, paper B CNN arrays (PHYSICS.md)
ARRAYS = [
    ("A fc1", 256, 785, 1),
    ("A fc2", 128, 257, 1),
    ("A fc3", 10, 129, 1),
    ("B conv1", 16, 26, 576),
    ("B conv2", 32, 401, 64),
    ("B fc1", 128, 513, 1),
    ("B fc2", 10, 129, 1),
]


def best_us(fn: Callable[[], object], calls: int, repeats: int) -> float:
    """Best mean time per call in µs over ``repeats`` runs of ``calls`` calls."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t0) / calls)
    return best * 1e6


def workload(
    out_size: int, in_size: int, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Inputs like training: sparse pixels for the first layers (785 = image, 26 = 5x5
    patch), dense activations otherwise; errors ~ N(0, 0.01²). The last column is the bias
    input 1."""
    x = rng.uniform(0, 1, (n, in_size))
    if in_size in (785, 26):
        x *= rng.random((n, in_size)) < 0.19  # MNIST: about 19 % of the pixels are lit
    x[:, -1] = 1.0
    d = rng.normal(0, 0.01, (n, out_size))
    return (x[0], d[0]) if n == 1 else (x, d)


def time_tile(
    cfg: rpu.RPUConfig, calls: int, repeats: int
) -> list[tuple[str, float, float, float]]:
    rows = []
    rng = np.random.default_rng(1)
    for name, out_size, in_size, n in ARRAYS:
        tile = AnalogTile(out_size, in_size, cfg, rng=rng, update_thread=False)
        tile.set_weights(rng.uniform(-0.1, 0.1, (out_size, in_size)))
        x, d = workload(out_size, in_size, n, rng)
        c = max(1, calls // n)
        fwd = best_us(lambda t=tile, x=x: t.forward(x), c, repeats)
        bwd = best_us(lambda t=tile, d=d: t.backward(d), c, repeats)
        upd = best_us(lambda t=tile, x=x, d=d: t.update(x, d, 0.01), c, repeats)
        rows.append((f"{name} {out_size}x{in_size} n={n}", fwd, bwd, upd))
    return rows


def print_rows(title: str, rows: list[tuple[str, float, float, float]]) -> None:
    print(f"\n{title}: µs per call (best of runs)")
    print(f"{'array':28s} {'forward':>9s} {'backward':>9s} {'update':>9s} {'sum':>9s}")
    for name, f, b, u in rows:
        print(f"{name:28s} {f:9.1f} {b:9.1f} {u:9.1f} {f + b + u:9.1f}")
    fc = sum(f + b + u for name, f, b, u in rows if name.startswith("A "))
    cnn = sum(f + b + u for name, f, b, u in rows if name.startswith("B "))
    print(
        f"tile time per sample: FC {fc:.0f} µs (≤ {1e6 / fc:,.0f} samples/s), "
        f"CNN {cnn:.0f} µs (≤ {1e6 / cnn:,.0f} samples/s), before layer overhead"
    )


def reference_ratio(repeats: int) -> None:
    """Compiled kernel vs plain reference, 256x785 paper-A tile, one vector."""
    rng = np.random.default_rng(2)
    cfg = rpu.gokmen_vlasov_2016()
    tile = AnalogTile(256, 785, cfg, rng=rng, update_thread=False)
    tile.set_weights(rng.uniform(-0.1, 0.1, (256, 785)))
    x, d = workload(256, 785, 1, rng)
    iov = io_vector(cfg.forward)
    w64 = tile.get_weights()
    fast_read = best_us(lambda: tile.forward(x), 200, repeats)
    ref_read = best_us(lambda: kernels.reference_read(w64, x, iov, rng), 50, repeats)
    fast_upd = best_us(lambda: tile.update(x, d, 0.01), 200, repeats)
    wcopy = tile.device_weights()
    par = np.stack(
        [tile.device_parameters()[k] for k in ("dw_up", "dw_down", "w_max", "w_min")], axis=-1
    )
    dp = np.zeros(kernels.DP_LEN)
    dp[kernels.DP_CTOC] = cfg.device.dw_min_ctoc
    dp[kernels.DP_BOUNDED] = 1.0

    def ref_update() -> None:
        kernels.reference_update(x, d, 0.01, 10, True, 0.001, wcopy, par, dp, rng)

    ref_upd = best_us(ref_update, 3, max(2, repeats // 2))
    print("\ncompiled kernel vs plain numpy reference (256x785, paper-A baseline, 1 vector)")
    ratio = ref_read / fast_read
    print(f"  forward read   : {fast_read:9.1f} µs vs {ref_read:9.1f} µs  ({ratio:6.1f}x)")
    ratio = ref_upd / fast_upd
    print(f"  pulsed update  : {fast_upd:9.1f} µs vs {ref_upd:9.1f} µs  ({ratio:6.1f}x)")


def network_rates(reps: int, n_fc: int, n_cnn: int) -> None:
    """Median samples/s of whole-network training with the update thread off and on."""
    from rpucircuit.model.network import cnn_gokmen_2017, fc_784_256_128_10

    rng = np.random.default_rng(3)
    images = rng.uniform(0, 1, (256, 784)) * (rng.random((256, 784)) < 0.19)
    labels = rng.integers(0, 10, 256)
    print("\nwhole-network training, samples/s (median of runs; update thread off / on)")
    for name, build, n in (
        ("FC 784-256-128-10", fc_784_256_128_10, n_fc),
        ("CNN paper B", cnn_gokmen_2017, n_cnn),
    ):
        nets = {
            mode: build(rpu.gokmen_vlasov_2016(), rng=np.random.default_rng(1), update_thread=mode)
            for mode in (False, True)
        }
        for net in nets.values():
            for i in range(max(20, n // 10)):  # warm-up: compilation, allocation
                net.train_step(images[i % 256], int(labels[i % 256]), 0.01)
        rates: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(reps):
            for mode, net in nets.items():
                t0 = time.perf_counter()
                for i in range(n):
                    net.train_step(images[i % 256], int(labels[i % 256]), 0.01)
                for tile in net.tiles:  # a deferred update belongs to this run
                    tile.finish_update()
                rates[mode].append(n / (time.perf_counter() - t0))
        off, on = (float(np.median(rates[m])) for m in (False, True))
        print(
            f"  {name:18s}: thread off {off:8,.0f}   thread on {on:8,.0f}   "
            f"ratio {on / off:4.2f}   (load {os.getloadavg()[0]:.2f})"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400, help="calls per timed run")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs, best kept")
    parser.add_argument("--quick", action="store_true", help="100 calls, 3 runs")
    parser.add_argument("--networks", action="store_true", help="also time whole-network training")
    parser.add_argument("--only-networks", action="store_true", help="only the networks")
    args = parser.parse_args()
    if args.only_networks:
        network_rates(5, 1000, 200)
        return 0
    calls, repeats = (100, 3) if args.quick else (args.calls, args.repeats)
    print(f"load average before: {os.getloadavg()[0]:.2f} (2 cores; > 1 means contention)")
    # per-call figures are the kernels' own cost: the tiles update in place (no thread)
    print_rows(
        "paper-A baseline (gokmen_vlasov_2016)", time_tile(rpu.gokmen_vlasov_2016(), calls, repeats)
    )
    print_rows("floating point (floating_point)", time_tile(rpu.floating_point(), calls, repeats))
    reference_ratio(repeats)
    if args.networks:
        network_rates(5, 1000, 200)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
