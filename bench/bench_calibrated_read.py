"""The calibrated behavioral read against the simulator: time per read and the agreement
of the two outputs, measured in one run on this machine.

    python bench/bench_calibrated_read.py                      # ~15 minutes on 2 cores
    python bench/bench_calibrated_read.py --quick              # ~30 s: 32×32 and 256×256
    python bench/bench_calibrated_read.py --model MODEL.h5 --sizes 64 --nodal-size 512 --reps 1

Model. ``--model`` names a model file (``rpucircuit calibrate``); without it the script
calibrates one from the committed ``sim_data/reference/characterization.h5`` into a
temporary folder first (about 2 s). The circuit the simulator runs is the one the model was
calibrated from (the characterization file's config, with the tile resized); a model that
names no characterization file is compared with paper A's preset circuit. On the reference
file's circuit a 64×64 tile has 16,512 nodes, and its transient took ngspice 39 (Sparse)
780 CPU-seconds, its DC point 12.5.

Behavioral read. An :class:`~rpucircuit.model.tile.AnalogTile` of the model's RPUConfig for
the tile's shape (``LoadedModel.rpu_config_for``), output noise off and the ADC off (the
simulations have none, as in calibration's validation), its forward attenuation map set
from the model's IR-drop model (``LoadedModel.tile_model``), weights ``W`` programmed
exactly; one read is ``tile.forward(x)`` (noise management, DAC, MVM, read gain, bound).
The read gain is this tile's own, as calibration's validation takes it:
``κ/(1 + G_line·τ_sum/C_int)`` with the model's fitted ``tau_sum_forward_s`` and this tile's
line conductance (the RPUConfig holds the characterized tile's), for the transient; a DC
point has no integrator and takes gain 1. Where ``IOConfig`` has a ``read_gain`` field the
tile applies it; where it has none (older model path) the script multiplies the outputs by
it inside the timed read. A model with an input transfer curve is refused: this bench
compares linear-device tiles.

Simulator. The same tile (``G± = G_mean ± W·ΔG_unit/2``) and inputs through
:func:`rpucircuit.circuit.extract.transfer_case`: the forward read as a transient with
integrators (``analysis="tran"``, the netlist characterization runs) and as a DC operating
point (``"op"``, charge = current × t_meas). Wall time is ngspice's own run
(``TransferResult.wall_s``); CPU time is the ngspice child processes'
(``resource.getrusage(RUSAGE_CHILDREN)`` before and after). The nodal solver
(:func:`rpucircuit.circuit.nodal.read`, factorization + solve, DC point: ideal integrators)
reads a ``--nodal-size`` tile; its CPU time is this process's (``time.process_time``).

Inputs are uniform in [-1, 1] with one entry set to 1 (so noise management's scale is 1
and the DAC sees the inputs the drivers quantize), weights uniform in ±w_max/2 (the
outputs stay below α, so bound management never re-reads; the script checks it, and that
the tile's read equals ``gain·(W∘A)·DAC(x)`` computed with numpy). Error: rms
of (behavioral − simulator) over the outputs in % of the model's α, beside the same for the
plain ``W·x``. Interleaved: each rep times the behavioral reads (median of batches) and
then runs the simulator; medians over reps.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import resource
import statistics
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from bench_training import cpu_model

from rpucircuit import store
from rpucircuit.calibration.read import gain_of
from rpucircuit.circuit import nodal, spice
from rpucircuit.circuit.extract import transfer_case
from rpucircuit.circuit.extract.common import weights_to_conductances
from rpucircuit.cli import main as cli_main
from rpucircuit.config.rpu import IOConfig, RPUConfig
from rpucircuit.config.tile import (
    CircuitConfig,
    circuit_config_from_data,
    gokmen_vlasov_2016,
    replace_tile,
)
from rpucircuit.errors import StoreError
from rpucircuit.model.modelfile import LoadedModel, check_characterization, load_model
from rpucircuit.model.tile import AnalogTile

REFERENCE = Path("sim_data/reference/characterization.h5")
"""The committed characterization file a model is calibrated from without ``--model``."""

BATCH_READS = 2000
"""Behavioral reads per timed batch: a read takes microseconds, so a batch takes
milliseconds, long enough for the clocks (``time.process_time`` ticks in ~1-10 ms)."""

BATCHES = 7
"""Timed batches per rep (their median is the rep's figure)."""

TILE_APPLIES_GAIN = "read_gain" in {f.name for f in dataclasses.fields(IOConfig)}
"""Whether the model path's reads apply a read gain (``IOConfig.read_gain``)."""

WEIGHT_SPAN = 0.5
"""Weights are uniform in ±WEIGHT_SPAN·w_max: within the devices' range, and small enough
that 512 random inputs keep every output below α."""


@dataclasses.dataclass(frozen=True, slots=True)
class Timing:
    """Seconds per read, wall clock and CPU."""

    wall_s: float
    cpu_s: float


def median_timing(ts: list[Timing]) -> Timing:
    return Timing(statistics.median(t.wall_s for t in ts), statistics.median(t.cpu_s for t in ts))


# --------------------------------------------------------------------------- model


def calibrated_model(tmp: Path) -> Path:
    """Calibrate the reference characterization file into ``tmp`` (the report is dropped)."""
    out = tmp / "model.h5"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        rc = cli_main(["calibrate", str(REFERENCE), "--out", str(out), "--plots", str(tmp)])
    if rc != 0:
        raise SystemExit(f"rpucircuit calibrate {REFERENCE} failed (exit {rc})")
    return out


def circuit_of(loaded: LoadedModel) -> tuple[CircuitConfig, str]:
    """The circuit config the model was calibrated from, and where it came from."""
    try:
        char = check_characterization(loaded)
    except StoreError as exc:
        return gokmen_vlasov_2016(), f"paper A's preset circuit ({exc})"
    toml = store.read_provenance(char).config_toml
    cfg = circuit_config_from_data(tomllib.loads(toml), source=str(char), extra_tables=["campaign"])
    return cfg, f"the circuit of {char}"


def tile_circuit(cfg: CircuitConfig, n: int) -> CircuitConfig:
    return replace_tile(cfg, rows=n, cols=n, spice_limit_s=1e9)


def read_config(loaded: LoadedModel, n: int, gain: float) -> RPUConfig:
    """The model's RPUConfig of an n×n tile, noise and ADC off, this tile's read gain (where
    the model path has one), device bounds without device-to-device spread (so the weights
    are programmed exactly; reads never see them)."""
    rpu = loaded.rpu_config_for(n, n)
    fwd = dataclasses.replace(rpu.forward, out_noise=0.0, out_res=0.0)
    if TILE_APPLIES_GAIN:
        fwd = dataclasses.replace(fwd, read_gain=gain)  # type: ignore[call-arg]
    bwd = dataclasses.replace(rpu.backward, out_noise=0.0, out_res=0.0)
    dev = dataclasses.replace(rpu.device, w_bound_dtod=0.0)
    return dataclasses.replace(rpu, forward=fwd, backward=bwd, device=dev)


def behavioral_read(
    loaded: LoadedModel, w: np.ndarray, gain: float
) -> Callable[[np.ndarray], np.ndarray]:
    """One forward read of ``x`` through a tile programmed with ``w`` (module doc)."""
    tile = behavioral_tile(loaded, w, gain)
    if TILE_APPLIES_GAIN:
        return lambda x: tile.forward(x)
    return lambda x: tile.forward(x) * gain


def expected_read(loaded: LoadedModel, w: np.ndarray, x: np.ndarray, gain: float) -> np.ndarray:
    """``gain·(W∘A)·DAC(x)`` in numpy: what the behavioral read must return here."""
    n = w.shape[0]
    fwd = loaded.rpu_config_for(n, n).forward
    step = fwd.inp_res * 2.0 * fwd.inp_bound
    xq = np.clip(np.rint(x / step) * step, -fwd.inp_bound, fwd.inp_bound)
    att = loaded.tile_model(n, n).forward_attenuation
    wa = w if att is None else w * att
    return np.asarray(gain * (wa @ xq), dtype=np.float64)


def check_read(
    loaded: LoadedModel, w: np.ndarray, x: np.ndarray, gain: float, y: np.ndarray
) -> None:
    """Refuse to time a read that is not the one meant (module doc)."""
    alpha = loaded.model.rpu.forward.out_bound
    if np.max(np.abs(y)) >= alpha:
        raise SystemExit(f"N={w.shape[0]}: an output reached α = {alpha}; lower WEIGHT_SPAN")
    ref = expected_read(loaded, w, x, gain)
    if not np.allclose(y, ref, rtol=1e-9, atol=1e-12 * alpha):
        raise SystemExit(
            f"N={w.shape[0]}: the tile's read differs from gain·(W∘A)·DAC(x) with gain "
            f"{gain:.6g} by up to {np.max(np.abs(y - ref)):.3g}: does the model path apply a "
            "read gain or transfer curve this script does not know of?"
        )


def behavioral_tile(loaded: LoadedModel, w: np.ndarray, gain: float) -> AnalogTile:
    n = w.shape[0]
    rpu = read_config(loaded, n, gain)
    tile = AnalogTile(n, n, rpu, rng=np.random.default_rng(0), update_thread=False)
    tile.set_weights(w)
    if not np.array_equal(tile.get_weights(), w):
        raise SystemExit("the tile clipped the weights: lower WEIGHT_SPAN")
    att = loaded.tile_model(n, n).forward_attenuation
    if att is not None:
        tile.set_attenuation(att)
    return tile


def read_gain(
    loaded: LoadedModel, cfg: CircuitConfig, g_pos: np.ndarray, g_neg: np.ndarray
) -> float:
    """Transient read gain of this tile's rows from the model's fitted τ_sum (module doc);
    1 for a model without one (an exported preset)."""
    params = {p.name: p.value for p in loaded.model.parameters}
    if "tau_sum_forward_s" not in params:
        return 1.0
    g_line = float(np.mean((g_pos + g_neg).sum(axis=1)))
    return gain_of(
        params["tau_sum_forward_s"], g_line_s=g_line, c_int_f=cfg.c_int_f, a0=cfg.periphery.a0
    )


# --------------------------------------------------------------------------- timing


def time_behavioral(read: Callable[[], object]) -> Timing:
    """Median over :data:`BATCHES` batches of :data:`BATCH_READS` reads, per read."""
    read()  # compiled kernels loaded, caches warm
    out = []
    for _ in range(BATCHES):
        c0, t0 = time.process_time(), time.perf_counter()
        for _ in range(BATCH_READS):
            read()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        out.append(Timing(wall / BATCH_READS, cpu / BATCH_READS))
    return median_timing(out)


def children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def rms_pct(y: np.ndarray, ref: np.ndarray, alpha: float) -> float:
    return float(100.0 * np.sqrt(np.mean((y - ref) ** 2)) / alpha)


@dataclasses.dataclass(frozen=True, slots=True)
class Row:
    label: str
    sim: Timing
    model: Timing
    err_pct: float
    plain_err_pct: float


def inputs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (n, n)), np.concatenate(([1.0], rng.uniform(-1, 1, n - 1)))


def bench_spice_size(
    loaded: LoadedModel, cfg0: CircuitConfig, n: int, reps: int, work: Path
) -> list[Row]:
    """Transient and DC point of an n×n tile against the behavioral read."""
    cfg = tile_circuit(cfg0, n)
    w, x = inputs(n, n)
    w = w * WEIGHT_SPAN * cfg.device.w_max
    g_pos, g_neg = weights_to_conductances(cfg, w)
    alpha = loaded.model.rpu.forward.out_bound
    gain = read_gain(loaded, cfg, g_pos, g_neg)
    y_plain = w @ x
    rows = []
    for analysis, g in (("tran", gain), ("op", 1.0)):
        read = behavioral_read(loaded, w, g)
        sims, models = [], []
        y_sim = np.zeros(n)
        for rep in range(reps):
            models.append(time_behavioral(lambda: read(x)))  # noqa: B023 (called here)
            c0 = children_cpu_s()
            res = transfer_case(
                cfg, w, x, name=f"{analysis}{n}_{rep}", analysis=analysis, workdir=work,
                timeout_s=3600.0,
            )  # fmt: skip
            sims.append(Timing(res.wall_s, children_cpu_s() - c0))
            y_sim = res.y_sim_w
        y_model = read(x)
        check_read(loaded, w, x, g, y_model)
        label = f"ngspice {'transient' if analysis == 'tran' else 'DC point'} {n}×{n}"
        rows.append(
            Row(
                label,
                median_timing(sims),
                median_timing(models),
                rms_pct(y_model, y_sim, alpha),
                rms_pct(y_plain, y_sim, alpha),
            )
        )
        print(f"  {label}: ngspice {sims[-1].wall_s:.3g} s, read gain {g:.6f}", flush=True)
    return rows


def bench_nodal(loaded: LoadedModel, cfg0: CircuitConfig, n: int, reps: int) -> Row:
    """DC-point nodal solve of an n×n tile against the behavioral read (gain 1)."""
    cfg = tile_circuit(cfg0, n)
    w, x = inputs(n, n)
    w = w * WEIGHT_SPAN * cfg.device.w_max
    g_pos, g_neg = weights_to_conductances(cfg, w)
    read = behavioral_read(loaded, w, 1.0)
    alpha = loaded.model.rpu.forward.out_bound
    sims, models = [], []
    q = np.zeros(n)
    for _ in range(reps):
        models.append(time_behavioral(lambda: read(x)))
        c0, t0 = time.process_time(), time.perf_counter()
        q = nodal.read(cfg, g_pos, g_neg, x, finite_gain=False).q_c
        sims.append(Timing(time.perf_counter() - t0, time.process_time() - c0))
    y_ref = q / cfg.q_unit_c
    y_model = read(x)
    check_read(loaded, w, x, 1.0, y_model)
    label = f"nodal solver, DC point {n}×{n}"
    print(f"  {label}: {sims[-1].wall_s:.3g} s", flush=True)
    return Row(
        label,
        median_timing(sims),
        median_timing(models),
        rms_pct(y_model, y_ref, alpha),
        rms_pct(w @ x, y_ref, alpha),
    )


# --------------------------------------------------------------------------- main


def table(rows: list[Row]) -> str:
    lines = [
        "| reference | reference s/read (wall / CPU) | behavioral µs/read (wall / CPU) "
        "| ratio, wall | ratio, CPU | rms error, % of α | plain W·x, rms % of α |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.label} | {r.sim.wall_s:.3g} / {r.sim.cpu_s:.3g} "
            f"| {1e6 * r.model.wall_s:.3g} / {1e6 * r.model.cpu_s:.3g} "
            f"| {r.sim.wall_s / r.model.wall_s:.3g} | {r.sim.cpu_s / r.model.cpu_s:.3g} "
            f"| {r.err_pct:.2g} | {r.plain_err_pct:.2g} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, help="model file (default: calibrate the reference)")
    ap.add_argument("--sizes", type=int, nargs="*", default=[64], help="ngspice tile sizes N")
    ap.add_argument("--nodal-size", type=int, default=512, help="nodal tile size (0 skips)")
    ap.add_argument("--reps", type=int, default=1, help="interleaved reps (ngspice runs each)")
    ap.add_argument("--quick", action="store_true", help="32×32 and a 256×256 nodal tile")
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.nodal_size = [32], 256
    if not spice.available():
        print("ngspice not found", file=sys.stderr)
        return 1
    print(f"CPU: {cpu_model()}; {spice.ngspice_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_path = args.model if args.model is not None else calibrated_model(work)
        loaded = load_model(model_path)
        if loaded.model.forward_input_transfer is not None:
            print(
                f"{model_path}: the model has a forward input transfer curve, which the tile "
                "does not apply; this bench compares linear-device models only",
                file=sys.stderr,
            )
            return 2
        cfg, where = circuit_of(loaded)
        shown = model_path if args.model is not None else "a temporary file"
        print(f"model: {shown} ({loaded.model.source}); circuit: {where}\n")
        rows: list[Row] = []
        for n in args.sizes:
            rows += bench_spice_size(loaded, cfg, n, args.reps, work)
        if args.nodal_size > 0:
            rows.append(bench_nodal(loaded, cfg, args.nodal_size, args.reps))
    print("\n" + table(rows))
    print(
        f"\nmedians of {args.reps} interleaved rep(s); behavioral: median of {BATCHES} batches "
        f"of {BATCH_READS} single-vector reads; noise and ADC off; errors in % of "
        f"α = {loaded.model.rpu.forward.out_bound:.4g}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
