"""Circuit spot checks (rpucircuit.calibration.cosim) on tiny layers, with real ngspice: the
comparison against independent computations, timeouts and failures recorded, not raised."""

from __future__ import annotations

import dataclasses
import pickle
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from rpucircuit.calibration import cosim
from rpucircuit.calibration.cosim_worker import (
    GRACE_S,
    CircuitJob,
    children,
    start_worker,
    stop_worker,
)
from rpucircuit.calibration.lines import first_order_regressors
from rpucircuit.circuit.extract import weights_to_conductances
from rpucircuit.config import rpu
from rpucircuit.config.tile import LineConfig, gokmen_vlasov_2016, replace_tile
from rpucircuit.config.training import CosimConfig
from rpucircuit.model.irdrop import IRDropModel

pytestmark = pytest.mark.sim

ROWS, COLS = 8, 12
ALL = cosim.Block(0, 0, ROWS, COLS)


def matched_io() -> rpu.IOConfig:
    """Paper A's forward periphery with the DAC step of the circuit's drivers (1/126 of
    full scale: inp_res·2·inp_bound = 1/126) and no output bound or ADC, so the behavioral
    read and the circuit differ by the circuit's physics only."""
    return dataclasses.replace(
        rpu.gokmen_vlasov_2016().forward,
        inp_res=1 / 252,
        out_bound=0.0,
        out_res=0.0,
        bound_management=False,
    )


def lossy_circuit(rho: float):  # type: ignore[no-untyped-def]
    """Paper A's circuit with line segments of ρ·R_mean (a visible IR drop)."""
    cfg = gokmen_vlasov_2016()
    line = LineConfig(r_ohm_per_um=rho * cfg.device.r_mean_ohm / cfg.tile.pitch_um)
    return replace_tile(cfg, row_line=line, col_line=line)


def test_nodal_and_ngspice_op_solve_the_same_network(rng: np.random.Generator) -> None:
    """Block = whole layer: the nodal solve and ngspice's operating point are the same
    resistive network, so they agree to solver precision (bound 1e-6 relative; the circuit
    API measured ~1e-13), and both sit within the IR drop of the behavioral read. The
    transient adds the integrators (finite gain, bandwidth, edges): within 1 % of the
    largest output of the operating point."""
    w = rng.uniform(-0.5, 0.5, (ROWS, COLS))
    x = rng.uniform(0.0, 1.0, COLS)
    spec = CosimConfig(block_rows=ROWS, block_cols=COLS, time_limit_s=120.0)
    check = cosim.check_layer(
        w, np.ones_like(w), matched_io(), x, circuit=gokmen_vlasov_2016(), block=ALL, spec=spec
    )
    assert check.status == "ok", check.message
    op, nod, tran = check.circuit.y_op_w, check.circuit.y_nodal_w, check.circuit.y_tran_w
    scale = float(np.abs(nod).max())
    assert np.abs(op - nod).max() <= 1e-6 * scale
    assert np.abs(tran - op).max() <= 1e-2 * scale
    # the recorded figures are those differences, in % of α
    alpha = gokmen_vlasov_2016().alpha_effective
    d = nod - check.y_behavioral_layer_w
    assert check.errors_pct["nodal"][1] == pytest.approx(100 * np.abs(d).max() / alpha)
    row = check.row(epoch=3, layer=1)
    assert set(row) == set(cosim.COLUMNS) and row["status"] == "ok"


def test_behavioral_read_differs_from_nodal_by_the_expected_ir_drop(
    rng: np.random.Generator,
) -> None:
    """Lines of ρ = 1e-3 per segment: the nodal solve of the whole layer loses the IR drop
    of the lines, which the behavioral read (attenuation map ones) does not model, so their
    difference is the first-order drop of these conductances and inputs
    (rpucircuit.calibration.lines, derived independently of both), within the terms that
    derivation neglects, of the relative size of the largest first-order attenuation: a_max
    of the mean tile (0.114 here) scaled to devices up to G_on (× G_on/G_mean = 1.78), of
    the drop itself. Measured: 0.12 of the largest drop (the series' next term, −a·drop)."""
    rho = 1e-3
    circuit = lossy_circuit(rho)
    tile = circuit.tile
    a_max = IRDropModel(
        segment_ratio=rho, driver_ratio=tile.r_driver_ohm / circuit.device.r_mean_ohm
    ).max_attenuation(ROWS, COLS)
    w = rng.uniform(-0.5, 0.5, (ROWS, COLS))
    x = rng.uniform(0.0, 1.0, COLS)
    spec = CosimConfig(block_rows=ROWS, block_cols=COLS, op=False, tran=False)
    check = cosim.check_layer(
        w, np.ones_like(w), matched_io(), x, circuit=circuit, block=ALL, spec=spec
    )
    assert check.status == "ok", check.message
    g_pos, g_neg = weights_to_conductances(replace_tile(circuit, rows=ROWS, cols=COLS), w)
    xq = np.round(check.x_n * 126) / 126  # the drivers' inputs
    a_seg, a_drv = first_order_regressors([g_pos, g_neg], xq, circuit.device.dg_unit_s, "forward")
    drop = tile.r_seg_row_ohm * a_seg + tile.r_driver_ohm * a_drv
    seen = check.y_behavioral_layer_w - check.circuit.y_nodal_w
    a_worst = a_max * circuit.device.g_on_s / circuit.device.g_mean_s
    assert np.abs(seen - drop).max() <= a_worst * np.abs(drop).max()
    # the drop is real: far above the solver's and the quantization's precision
    assert np.abs(drop).max() > 1e-3
    assert check.errors_pct["nodal"][1] == pytest.approx(
        100 * np.abs(seen).max() / circuit.alpha_effective
    )


def test_a_tiny_time_limit_is_recorded_not_raised(rng: np.random.Generator) -> None:
    """0.01 s: the worker starts after its deadline, runs nothing and says so."""
    w = rng.uniform(-0.5, 0.5, (ROWS, COLS))
    spec = CosimConfig(block_rows=ROWS, block_cols=COLS, time_limit_s=0.01)
    check = cosim.check_layer(
        w,
        np.ones_like(w),
        matched_io(),
        rng.uniform(0, 1, COLS),
        circuit=gokmen_vlasov_2016(),
        block=ALL,
        spec=spec,
    )
    assert check.status == "timeout"
    assert "time limit" in check.message
    assert np.isnan(check.errors_pct["spice_tran"][0])


def test_ngspice_is_killed_at_the_time_limit(rng: np.random.Generator) -> None:
    """A 32 × 32 transient (tens of seconds of ngspice) under a 3 s limit: the backend kills
    ngspice at the deadline, the check comes back within the limit plus the worker's grace,
    status timeout, and what finished before it (the nodal solve) is kept."""
    w = rng.uniform(-0.5, 0.5, (32, 32))
    spec = CosimConfig(block_rows=32, block_cols=32, op=False, time_limit_s=3.0)
    t0 = time.monotonic()
    check = cosim.check_layer(
        w,
        np.ones_like(w),
        matched_io(),
        rng.uniform(0, 1, 32),
        circuit=gokmen_vlasov_2016(),
        block=cosim.Block(0, 0, 32, 32),
        spec=spec,
    )
    assert time.monotonic() - t0 <= 3.0 + GRACE_S + 2.0
    assert check.status == "timeout", check.message
    assert "tran" in check.message
    if check.circuit.y_nodal_w.size:  # the worker started in time to solve it
        assert np.isfinite(check.errors_pct["nodal"][0])


def test_a_failing_analysis_is_recorded_and_the_others_still_run(
    rng: np.random.Generator,
) -> None:
    """A sinh read with time encoding has no DC operating point (the builder refuses it):
    status failed, the refusal in the message, the nodal solve still done."""
    cfg = gokmen_vlasov_2016()
    circuit = dataclasses.replace(cfg, device=dataclasses.replace(cfg.device, read_iv="sinh"))
    w = rng.uniform(-0.5, 0.5, (ROWS, COLS))
    x = rng.uniform(0.1, 0.9, COLS)  # partial pulses
    spec = CosimConfig(block_rows=ROWS, block_cols=COLS, tran=False)
    check = cosim.check_layer(
        w, np.ones_like(w), matched_io(), x, circuit=circuit, block=ALL, spec=spec
    )
    assert check.status == "failed"
    assert "op: UnsupportedError" in check.message
    assert np.isfinite(check.errors_pct["nodal"][0])


def test_stopping_a_worker_kills_its_ngspice(rng: np.random.Generator) -> None:
    """What a Ctrl-C in training does to a running check: the worker gets SIGTERM, kills the
    ngspice it started (in a process group of its own, which killing the worker alone would
    leave running) and exits."""
    w = rng.uniform(-0.5, 0.5, (32, 32))
    job = CircuitJob(
        circuit=gokmen_vlasov_2016(),
        w_block=w,
        x_block=rng.uniform(0, 1, 32),
        w_layer=None,
        x_layer=None,
        op=False,
        tran=True,
        deadline=time.monotonic() + 120.0,
    )
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_worker()
        assert proc.stdin is not None
        proc.stdin.write(pickle.dumps((job, tmp)))
        proc.stdin.close()
        proc.stdin = None  # sent; stop_worker's communicate must not write again
        spice: list[int] = []
        t0 = time.monotonic()
        while not spice and time.monotonic() - t0 < 30.0:
            time.sleep(0.1)
            spice = children(proc.pid)
        assert spice, "the worker never started ngspice"
        stop_worker(proc)
        assert proc.returncode is not None
        time.sleep(0.2)
        assert not any(Path(f"/proc/{pid}").exists() for pid in spice)
