"""The circuit core through the real ngspice: reads vs the nodal solver and W·x, the
integrator vs Q/C_int, the update model's k, and failures that must surface clearly."""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rpucircuit.circuit import netlist as nl
from rpucircuit.circuit import nodal, spice
from rpucircuit.config.tile import CircuitConfig, LineConfig, gokmen_vlasov_2016, replace_tile
from rpucircuit.errors import NetlistError, SimulationError, SimulationTimeoutError

pytestmark = pytest.mark.sim


def _cfg(
    n: int, r_ohm_per_um: float, *, r_driver_ohm: float = 10.0, paired: bool = True
) -> CircuitConfig:
    line = LineConfig(r_ohm_per_um=r_ohm_per_um)
    return replace_tile(
        gokmen_vlasov_2016(rows=8, cols=8),
        rows=n,
        cols=n,
        row_line=line,
        col_line=line,
        r_driver_ohm=r_driver_ohm,
        paired=paired,
    )


def _conductances(cfg: CircuitConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    d, t = cfg.device, cfg.tile
    shape = (t.rows, t.cols)
    return rng.uniform(d.g_off_s, d.g_on_s, shape), rng.uniform(d.g_off_s, d.g_on_s, shape)


def _outputs(net: nl.Netlist, res: spice.RawResult, role: str) -> np.ndarray:
    return np.array([res.vector(v)[-1].real for v in net.role(role)])


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_transient_16x16_with_line_resistance_matches_nodal(
    direction: nl.Direction, rng: np.random.Generator, tmp_path: Path
) -> None:
    # 12 kΩ segments make the IR drop a visible ~1 % effect at 16 cross points.
    cfg = _cfg(16, 3e4)
    gp, gn = _conductances(cfg, rng)
    x = rng.uniform(-1, 1, 16)
    net = nl.build_read(cfg, gp, gn, x, direction=direction)
    res = spice.run(spice.SpiceJob.from_netlist(net, name="tran16"), workdir=tmp_path)
    v = _outputs(net, res, "outputs")
    ref = nodal.read(cfg, gp, gn, x, direction=direction, finite_gain=True)
    full_scale = cfg.periphery.v_out_max_v
    ideal = -ref.q_ideal_c / cfg.c_int_f
    # The line resistance matters here by more than the tolerance (the test has teeth) ...
    assert np.max(np.abs(ideal - ref.v_out_v)) > 2 * 0.005 * full_scale
    # ... and ngspice agrees with the nodal solve within 0.5 % of full scale (the stated
    # accuracy; measured ~3e-6 V, i.e. the ngspice transient's own tolerances).
    assert np.max(np.abs(v - ref.v_out_v)) < 0.005 * full_scale
    # Tighter, as measured: 1e-4 of full scale.
    assert np.max(np.abs(v - ref.v_out_v)) < 1e-4 * full_scale
    assert not list(tmp_path.iterdir())  # successful run folders are removed


def test_dc_op_64x64_matches_nodal(rng: np.random.Generator, tmp_path: Path) -> None:
    # One array (paired=False) keeps ngspice's DC point at ~7 s; the paired 64×64 takes
    # ~40 s on 2 cores (bench/bench_nodal.py) and checks the same network twice over.
    cfg = _cfg(64, 0.36 * 1e3, paired=False)
    gp, _ = _conductances(cfg, rng)
    x = rng.uniform(-1, 1, 64)
    net = nl.build_read(cfg, gp, None, x, analysis="op")
    res = spice.run(spice.SpiceJob.from_netlist(net, name="op64"), workdir=tmp_path)
    i_spice = _outputs(net, res, "currents")
    ref = nodal.read(cfg, gp, None, x, finite_gain=False)
    # Same linear network, two direct solves in double precision: 1e-6 relative;
    # measured ~1e-12.
    assert np.max(np.abs(i_spice - ref.i_mean_a)) < 1e-6 * np.max(np.abs(i_spice))
    assert np.max(np.abs(ref.q_c - ref.q_ideal_c)) > 1e-3 * np.max(np.abs(ref.q_c))


def test_paired_backward_op_matches_nodal(rng: np.random.Generator, tmp_path: Path) -> None:
    cfg = replace_tile(_cfg(12, 1e4), cols=9)
    gp, gn = _conductances(cfg, rng)
    x = rng.uniform(-1, 1, 12)
    net = nl.build_read(cfg, gp, gn, x, direction="backward", analysis="op")
    res = spice.run(spice.SpiceJob.from_netlist(net, name="opb"), workdir=tmp_path)
    ref = nodal.read(cfg, gp, gn, x, direction="backward", finite_gain=False)
    i_spice = _outputs(net, res, "currents")
    assert np.max(np.abs(i_spice - ref.i_mean_a)) < 1e-6 * np.max(np.abs(i_spice))


def test_zero_line_resistance_gives_wx_up_to_op_amp_error(
    rng: np.random.Generator, tmp_path: Path
) -> None:
    cfg = _cfg(16, 0.0, r_driver_ohm=0.0)
    gp, gn = _conductances(cfg, rng)
    x = rng.uniform(-1, 1, 16)
    net = nl.build_read(cfg, gp, gn, x)
    res = spice.run(spice.SpiceJob.from_netlist(net, name="zero"), workdir=tmp_path)
    v = _outputs(net, res, "outputs")
    u = nl.input_volt_seconds(cfg, x)
    ideal = -((gp - gn) @ u) / cfg.c_int_f
    p = cfg.periphery
    # The integrator's error: input resistance 1/(2π·GBW·C_int) against the row's total
    # conductance, plus 1/A0 (nodal module doc). Bound per output, with 20 % headroom.
    g_tot = (gp + gn).sum(axis=1)
    r_gbw = 1 / (2 * math.pi * p.gbw_hz * cfg.c_int_f)
    bound = 1.2 * (g_tot * r_gbw + 2 / p.a0) * np.abs(ideal)
    assert np.all(np.abs(v - ideal) <= bound + 1e-6)
    # ... and that error is what the first-order model predicts, to ~1e-5 of full scale.
    ref = nodal.read(cfg, gp, gn, x, finite_gain=True)
    assert np.max(np.abs(v - ref.v_out_v)) < 1e-5 * p.v_out_max_v


def test_integrator_output_is_minus_q_over_c_and_clips(tmp_path: Path) -> None:
    cfg = _cfg(1, 0.0, r_driver_ohm=0.0, paired=False)
    g = np.array([[cfg.device.g_on_s]])
    for x, expect in ((0.5, None), (1.0, None)):
        net = nl.build_read(cfg, g, None, np.array([x]))
        res = spice.run(spice.SpiceJob.from_netlist(net, name="integ"), workdir=tmp_path)
        v = _outputs(net, res, "outputs")[0]
        q = g[0, 0] * x * cfg.periphery.v_read_v * cfg.periphery.t_meas_s
        # One device of 74 nS: the op-amp errors are 74 nS·1.6 kΩ + 1e-4 ≈ 2.2e-4.
        assert v == pytest.approx(-q / cfg.c_int_f, rel=3e-4), expect
    # A larger C_int-overloading input: the output stops at the swing limit.
    small = dataclasses.replace(
        cfg, periphery=dataclasses.replace(cfg.periphery, c_int_f=cfg.c_int_f / 20)
    )
    net = nl.build_read(small, g, None, np.array([1.0]))
    res = spice.run(spice.SpiceJob.from_netlist(net, name="clip"), workdir=tmp_path)
    # -Q/C would be about -1.37 V; the buffer clips at exactly -v_out_max_v.
    assert _outputs(net, res, "outputs")[0] == pytest.approx(-1.0, abs=1e-9)


def _drive(bits: np.ndarray, amp: float, t: np.ndarray, cfg: CircuitConfig) -> np.ndarray:
    """A line's voltage from its bit stream, written here independently of the builder:
    runs of set bits are trapezoids whose 50 % points sit on the slot edges."""
    tp, tr = cfg.periphery.t_pulse_s, cfg.periphery.t_rise_s
    v = np.zeros_like(t)
    padded = np.concatenate([[False], bits, [False]]).astype(int)
    starts = np.flatnonzero(np.diff(padded) == 1)
    stops = np.flatnonzero(np.diff(padded) == -1)
    for b, e in zip(starts, stops, strict=True):
        t_on, t_off = tp + b * tp, tp + e * tp
        v += amp * (
            np.clip((t - t_on + tr / 2) / tr, 0, 1) - np.clip((t - t_off + tr / 2) / tr, 0, 1)
        )
    return v


def _expected_dg(cfg: CircuitConfig, v_dev: np.ndarray, dt: float) -> float:
    """∫ R0·f(V(t)) dt for the device model's rate f (bounds far away: factor 1)."""
    k, v0 = cfg.device.k, cfg.update_v0_v
    if k < 0.5:
        f = v0 * np.sinh(v_dev / v0)
    elif k > 0.5:
        f = v0 * np.tanh(v_dev / v0)
    else:
        f = v_dev
    return float(cfg.update_rate_scale * np.sum(f) * dt)


@pytest.mark.parametrize("k", [0.1, 0.5, 0.8])
def test_update_half_selected_change_k_times(k: float, tmp_path: Path) -> None:
    cfg = gokmen_vlasov_2016(rows=2, cols=2)
    cfg = dataclasses.replace(cfg, device=dataclasses.replace(cfg.device, k=k))
    g0 = np.full((2, 2), cfg.device.g_mean_s)
    p = cfg.periphery
    rb = np.zeros((2, p.bl), bool)
    cb = np.zeros((2, p.bl), bool)
    rb[0, :] = True  # row 0 pulses in every slot
    cb[0, ::2] = True  # column 0 in every other slot
    dt = 1e-13
    t = np.arange(0, (p.bl + 2) * p.t_pulse_s, dt) + dt / 2  # midpoint rule
    step = cfg.device.dg_pulse_s
    for polarity in (1, -1):
        net = nl.build_update(cfg, g0, rb, cb, polarity=polarity)
        res = spice.run(spice.SpiceJob.from_netlist(net, name="upd"), workdir=tmp_path)
        dg = _outputs(net, res, "states").reshape(2, 2) * 1e-9
        half = polarity * p.v_s_v / 2
        for i in range(2):
            for j in range(2):
                v_dev = _drive(rb[i], half, t, cfg) - _drive(cb[j], -half, t, cfg)
                ref = _expected_dg(cfg, v_dev, dt)
                # Reference quadrature of the applied waveform (0.1 ps midpoint rule) vs
                # ngspice's integration of the state capacitor on 10 ps steps through the
                # 50 ps edges: 0.1 % of the change (measured 0.04 %), 1e-4 pulse floor.
                assert abs(dg[i, j] - ref) < 1e-3 * abs(ref) + 1e-4 * step, (i, j, polarity)
        # The physics in words: row-only half-selection (10 slots) gives k·Δg per slot
        # (the flat tops dominate; edges cost < 1 %), and the unselected device moves by
        # no more than 1e-4 of a pulse (µV of line IR drop across it).
        assert dg[0, 1] / 10 == pytest.approx(polarity * k * step, rel=0.01)
        assert abs(dg[1, 1]) < 1e-4 * step
        # Coincident slots: Δg per pulse within the edge effect (≤ 3 % for k = 0.1).
        full = (dg[0, 0] - 5 * dg[0, 1] / 10) / 5
        assert full == pytest.approx(polarity * step, rel=0.03)


def test_netlist_error_surfaces_with_log(tmp_path: Path) -> None:
    text = "* broken\nr1 a\n.control\nop\nwrite out.raw all\nquit\n.endc\n.end\n"
    job = spice.SpiceJob(text=text, name="broken")
    with pytest.raises(SimulationError, match="ngspice failed on job 'broken'") as info:
        spice.run(job, workdir=tmp_path)
    err = info.value
    assert err.run_dir is not None and (err.run_dir / "net.cir").is_file()
    assert not (err.run_dir / "out.raw").exists()
    assert err.netlist == text
    assert err.log


def test_missing_vector_is_an_error(tmp_path: Path) -> None:
    cfg = gokmen_vlasov_2016(rows=2, cols=2)
    net = nl.build_line(cfg, n=3)
    job = dataclasses.replace(spice.SpiceJob.from_netlist(net, name="miss"), expect=("v(zz)",))
    with pytest.raises(SimulationError, match=r"raw file lacks vectors \['v\(zz\)'\]"):
        spice.run(job, workdir=tmp_path)


def test_hung_simulation_times_out(tmp_path: Path) -> None:
    cfg = _cfg(16, 0.36)
    g = np.full((16, 16), cfg.device.g_mean_s)
    net = nl.build_read(cfg, g, g, np.ones(16))
    slow = dataclasses.replace(net, analyses=(nl.Tran(step_s=1e-13, stop_s=1e-3),))
    job = spice.SpiceJob.from_netlist(slow, name="hung", timeout_s=1.0)
    with pytest.raises(SimulationTimeoutError, match=r"ran past its 1 s limit") as info:
        spice.run(job, workdir=tmp_path)
    assert info.value.run_dir is not None
    assert not (info.value.run_dir / "out.raw").exists()


def test_hostile_names_rejected_before_simulation(tmp_path: Path) -> None:
    el = nl.Resistor("r1", "a\n.control\nshell touch pwned\n.endc", "0", 1.0)
    net = nl.Netlist("t", (), (el,), (nl.Op(),), ())
    with pytest.raises(NetlistError, match="must match"):
        spice.SpiceJob.from_netlist(net, name="hostile")
    with pytest.raises(NetlistError, match="job name"):
        spice.SpiceJob(text="* x\n.end\n", name="../../etc")
    with pytest.raises(NetlistError, match=r"library = '\.\./x\.lib'"):
        spice.SpiceJob(text="* x\n.end\n", libs=("../x.lib",))
    with pytest.raises(NetlistError, match="timeout_s = 0"):
        spice.SpiceJob(text="* x\n.end\n", timeout_s=0)
    assert not list(tmp_path.iterdir())


def test_run_many_matches_run_and_returns_failures(tmp_path: Path) -> None:
    cfg = gokmen_vlasov_2016(rows=2, cols=2)
    jobs = [
        spice.SpiceJob.from_netlist(nl.build_line(cfg, n=n), name=f"line{n}") for n in (2, 3, 4)
    ]
    broken = spice.SpiceJob(text="* broken\nr1 a\n.control\nop\nquit\n.endc\n.end\n", name="bad")
    seen: list[tuple[int, int]] = []
    out = spice.run_many(
        [*jobs, broken],
        workdir=tmp_path,
        n_workers=2,
        progress=lambda d, t: seen.append((d, t)),
        return_exceptions=True,
    )
    assert isinstance(out[3], SimulationError)
    for job, res in zip(jobs, out[:3], strict=True):
        single = spice.run(job, workdir=tmp_path)
        assert isinstance(res, spice.RawResult)
        assert np.array_equal(res.vector("v(l0)"), single.vector("v(l0)"))
    assert seen[-1] == (4, 4)
    with pytest.raises(SimulationError, match="job 'bad'"):
        spice.run_many([broken], workdir=tmp_path, n_workers=1)
    with pytest.raises(ValueError, match="n_workers = 0"):
        spice.run_many(jobs, workdir=tmp_path, n_workers=0)


def test_version_and_available() -> None:
    assert spice.available()
    assert spice.ngspice_version().startswith("ngspice-39")


def test_sinh_read_time_encoding_linear_amplitude_not(tmp_path: Path) -> None:
    """One sinh device, I = G·V0·sinh(V/V0): time-encoded inputs integrate I(V_read)·|x|·t
    (linear in x); amplitude-encoded ones integrate I(x·V_read)·t (not linear)."""
    base = _cfg(1, 0.0, r_driver_ohm=0.0, paired=False)
    base = dataclasses.replace(base, device=dataclasses.replace(base.device, read_iv="sinh"))
    g = np.array([[base.device.g_on_s]])
    p, v0 = base.periphery, base.device.read_v0_v
    gain = 1 / base.c_int_f
    for encoding in ("time", "amplitude"):
        cfg = dataclasses.replace(base, periphery=dataclasses.replace(p, encoding=encoding))
        for x in (0.5, 1.0):
            net = nl.build_read(cfg, g, None, np.array([x]))
            res = spice.run(spice.SpiceJob.from_netlist(net, name="sinh"), workdir=tmp_path)
            v = _outputs(net, res, "outputs")[0]
            if encoding == "time":
                q = g[0, 0] * v0 * math.sinh(p.v_read_v / v0) * x * p.t_meas_s
            else:
                q = g[0, 0] * v0 * math.sinh(x * p.v_read_v / v0) * p.t_meas_s
            # Op-amp errors for one 74 nS device at up to 3.6× its small-signal current:
            # ≤ 1e-3 relative (the linear case measures 2e-4).
            assert v == pytest.approx(-q * gain, rel=1e-3), (encoding, x)


def _ngspice_pids_under(folder: Path) -> list[int]:
    """ngspice processes whose working folder lies under ``folder`` (Linux /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "ngspice":
                continue
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue  # gone meanwhile
        if cwd.is_relative_to(folder):
            pids.append(int(entry.name))
    return pids


@pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="needs Linux /proc")
def test_interrupted_run_takes_its_ngspice_with_it(tmp_path: Path) -> None:
    # ngspice runs in its own session (so a time limit can kill its whole group); Ctrl-C
    # of the caller must still end it, not leave it simulating for the full time limit
    script = (
        "import dataclasses, sys\n"
        "import numpy as np\n"
        "from pathlib import Path\n"
        "from rpucircuit.circuit import netlist as nl, spice\n"
        "from rpucircuit.config.tile import gokmen_vlasov_2016\n"
        "cfg = gokmen_vlasov_2016(rows=16, cols=16)\n"
        "g = np.full((16, 16), cfg.device.g_mean_s)\n"
        "net = nl.build_read(cfg, g, g, np.ones(16))\n"
        "net = dataclasses.replace(net, analyses=(nl.Tran(step_s=1e-13, stop_s=1e-3),))\n"
        "job = spice.SpiceJob.from_netlist(net, name='long', timeout_s=300.0)\n"
        "spice.run(job, workdir=Path(sys.argv[1]))\n"
    )
    log = tmp_path / "caller.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path)],
            stderr=err,
            # a shell's background job (`cmd &` without job control) starts with SIGINT
            # ignored, which the child would inherit: restore the default, so it gets
            # Ctrl-C as from a terminal (the suite run as a background job failed here)
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            deadline = time.monotonic() + 60
            while not _ngspice_pids_under(tmp_path):
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "ngspice never started"
                time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=30) != 0  # KeyboardInterrupt
        finally:
            if proc.poll() is None:  # never leave the caller (and its ngspice) running
                proc.kill()
                proc.wait()
    assert "KeyboardInterrupt" in log.read_text()
    deadline = time.monotonic() + 10
    while _ngspice_pids_under(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _ngspice_pids_under(tmp_path) == []
