"""``rpucircuit verify`` in real ngspice: paper A's design passes; a tile too large for the
pulse budget, too small a C_int and too noisy an op-amp each fail the right check; a library
that ngspice rejects is named with ngspice's message; Dask gives the pool's numbers."""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from rpucircuit import cli, store
from rpucircuit.circuit import analytic as an
from rpucircuit.circuit import spice
from rpucircuit.circuit.extract.noise import config_noise_budget
from rpucircuit.config.tile import BOLTZMANN_J_PER_K, gokmen_vlasov_2016, load_circuit_config

pytestmark = [
    pytest.mark.sim,
    pytest.mark.skipif(not spice.available(), reason="ngspice not installed"),
]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "verify" / "paper-a"


def _design(tmp_path: Path, tile: str | None = None) -> Path:
    """A copy of the example design; with ``tile``, that circuit file and narrow nodal
    stripes (the failing designs are about other checks: seconds, not tens of seconds)."""
    dst = tmp_path / "design"
    shutil.copytree(EXAMPLE, dst)
    if tile is not None:
        (dst / "tile.toml").write_text(tile)
        design = dst / "design.toml"
        design.write_text(design.read_text().replace("[spec]\n", "[spec]\nnodal_lines = 8\n", 1))
    return dst / "design.toml"


def _verify(design: Path, out: Path, *extra: str) -> tuple[int, dict[str, dict[str, float]]]:
    rc = cli.main(["verify", str(design), "--out", str(out), "--no-progress", *extra])
    tree, prov = store.load(out / "verify.h5", kind="verify", schema_version=1)
    assert prov.ngspice_version.startswith("ngspice-")
    checks = {
        k: {f: np.asarray(v).item() for f, v in row.items()} for k, row in tree["checks"].items()
    }
    return rc, checks


def _failed(checks: dict[str, dict[str, float]]) -> set[str]:
    return {k for k, row in checks.items() if not row["passed"]}


SMALL_TILE = """
[tile]
rows = 512
cols = 512
[periphery]
gbw_hz = 4e9
e_n_v_per_rthz = 2e-9
"""
"""The example's periphery on a smaller tile (seconds instead of tens of seconds)."""


def test_paper_a_design_passes_and_its_numbers_match_references(tmp_path: Path) -> None:
    out = tmp_path / "out"
    rc, checks = _verify(_design(tmp_path), out)
    assert rc == 0, checks
    assert _failed(checks) == set()
    report = (out / "report.md").read_text()
    assert report.startswith("# Verification of design.toml: PASS")
    assert report.count("| PASS |") == len(checks) == 9
    # the netlists include copies of the designer's files, made in the output folder
    for role, src in (("integrator", "rpu_integrator.lib"), ("driver", "rpu_drivers.lib")):
        assert (out / "libs" / f"user_{role}.lib").read_text() == (EXAMPLE / src).read_text()
    for name in ("read.png", "integrator.png", "noise.png"):
        assert (out / name).stat().st_size > 1000
    tree, _ = store.load(out / "verify.h5")
    jobs = tree["jobs"]
    cfg = gokmen_vlasov_2016(rows=4096, cols=4096)
    t = cfg.tile
    # Line delay against Bakoglu's distributed-line fit (within a few %, analytic.py): 5 %.
    formula = an.distributed_delay_50_s(
        4096 * t.r_seg_row_ohm, 4096 * t.c_seg_row_f, r_driver_ohm=t.r_driver_ohm
    )
    assert float(jobs["lines"]["row"]["t50_s"]) == pytest.approx(formula, rel=0.05)
    # The shipped rectifying device is built so that f(V_S/2)/f(V_S) = k = 0.1 exactly; the
    # bound factor is 1 at G_mean and the state moves < 1 % of the range: 1 %.
    assert checks["half_select"]["measured"] == pytest.approx(cfg.device.k, rel=0.01)
    # The integrator at output_max_w against Q/C_int: finite gain A0 = 1e4 (1e-4) and the
    # driver's 10 ohm in ~1 Mohm: 0.5 %.
    cfg = load_circuit_config(EXAMPLE / "tile.toml")
    p, d = cfg.periphery, cfg.device
    # Read gain on the full line against the single-pole formula (analytic.line_signal_gain:
    # A0 and GBW, the line's conductance on the virtual ground): 3 %.
    g_line = 2 * 4096 * d.g_mean_s
    gain = an.line_signal_gain(g_line, cfg.c_int_f, p.gbw_hz, p.a0)
    assert checks["read_gain"]["measured"] == pytest.approx(gain, rel=0.03)
    # The nodal solver's gain on full-length output lines (the config's single-pole op-amp
    # model, which the example's integrator is) against the ngspice bench's: the same
    # virtual-ground loss, less the line's IR drop (~2 % here): 4 %.
    assert float(jobs["nodal"]["rows_gain"]) == pytest.approx(gain, rel=0.04)
    # Output noise against the analytic budget's device-thermal and op-amp terms (closed
    # forms for a single-pole op-amp and white device noise vs the .noise sweep): 10 %.
    b = config_noise_budget(cfg, 4096)  # both arrays' row segments on the summing node
    budget = math.hypot(b.device_thermal_w, b.opamp_w)
    assert checks["output_noise"]["measured"] == pytest.approx(budget, rel=0.10)
    # Integrator settling against tau·ln(lag/tol): tau = 1/(2 pi GBW beta) with
    # beta = C_int/(C_int + C_in), the output lagging its ramp by slope·tau, tol half an
    # ADC step (analytic.integrator_settling_tau_s); the bench's time step is 25 ps and the
    # input's falling edge 50 ps: 0.05 ns.
    tau = an.integrator_settling_tau_s(p.gbw_hz, cfg.c_int_f, 2 * 4096 * cfg.tile.c_seg_row_f)
    lag = float(jobs["bench"]["v_out_at_max_v"]) / p.t_meas_s * tau
    tol = cfg.adc_range_v / 2**p.adc_bits
    settle = tau * math.log(lag / tol) if lag > tol else 0.0
    assert checks["settling_integrator"]["measured"] == pytest.approx(settle * 1e9, abs=0.05)
    assert float(jobs["bench"]["v_out_at_max_v"]) == pytest.approx(
        float(jobs["bench"]["v_out_at_max_ideal_v"]), rel=0.005
    )


def test_too_small_c_int_fails_saturation(tmp_path: Path) -> None:
    c_int = gokmen_vlasov_2016().c_int_f  # alpha·Q_unit/V_swing does not depend on the size
    tile = SMALL_TILE + f"c_int_f = {0.5 * c_int!r}\n"
    rc, checks = _verify(_design(tmp_path, tile), tmp_path / "out")
    assert rc == 1
    assert "saturation" in _failed(checks)
    # half the capacitor: output_max_w = 10 needs 10/6 of the swing; it clips, no headroom
    assert checks["saturation"]["measured"] == pytest.approx(0.0, abs=0.01)


def test_noisy_opamp_fails_output_noise(tmp_path: Path) -> None:
    design = _design(tmp_path, SMALL_TILE.replace("512", "1024"))
    lib = design.parent / "rpu_integrator.lib"
    # The op-amp's share of the output noise grows as e_n times the line's conductance: on
    # 1024 rows, 100 nV/rtHz is 12.5 times the example's 4096 rows at 2 nV/rtHz.
    e_n = 100e-9
    r_noise = e_n**2 / (4 * BOLTZMANN_J_PER_K * 300.0)
    text = lib.read_text()
    # the designer's op-amp: its noise resistor fixed inside, no rnoise parameter to set
    for old, new in ((" rnoise=6e3 ", " "), ("rn inn ninv {rnoise}", f"rn inn ninv {r_noise!r}")):
        assert old in text
        text = text.replace(old, new, 1)
    lib.write_text(text)
    rc, checks = _verify(design, tmp_path / "out")
    assert rc == 1
    assert _failed(checks) == {"output_noise"}


def test_tile_too_large_for_the_pulse_budget_fails_settling(tmp_path: Path) -> None:
    tile = SMALL_TILE.replace("512", "8192")
    design = _design(tmp_path, tile)
    rc, checks = _verify(design, tmp_path / "out")
    assert rc == 1
    assert {"settling_row_line", "settling_col_line"} <= _failed(checks)
    # 8192 segments are beyond spice_line_max = 4096: the distributed-line formula, ~4 x
    # the 4096 line's 0.074 ns
    assert "formula" in (tmp_path / "out" / "report.md").read_text()


def test_library_that_ngspice_rejects_is_named_with_ngspice_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    design = _design(tmp_path)
    lib = design.parent / "rpu_drivers.lib"
    lib.write_text(
        ".subckt rpu_pulse_driver out v=1 td=0 tw=1e-9 tr=5e-11 rout=10\n"
        "xmissing out 0 no_such_subckt\n"
        ".ends rpu_pulse_driver\n"
    )
    out = tmp_path / "out"
    assert cli.main(["verify", str(design), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{lib.resolve()}: ngspice rejects the driver subcircuit 'rpu_pulse_driver'" in err
    assert "no_such_subckt" in err  # ngspice's own message, quoted
    assert not out.exists()  # the preflight runs elsewhere: no half-made output folder


def test_a_hanging_subcircuit_is_stopped_at_the_time_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A driver whose pulse train forces 1e-17 s steps passes the preflight (an operating
    point) and would run the transients for days: spec.timeout_s stops each run, the
    command fails (exit 1) naming the limit, and the jobs that finished stay cached."""
    design = _design(tmp_path, SMALL_TILE)
    design.write_text(design.read_text().replace("[spec]\n", "[spec]\ntimeout_s = 2\n", 1))
    lib = design.parent / "rpu_drivers.lib"
    text = lib.read_text()
    old = "rout src out {rout}\n.ends rpu_pulse_driver"
    assert old in text
    lib.write_text(
        text.replace(
            old,
            old.replace(
                "\n.ends", "\nvhf hf 0 pulse(0 1 0 1e-17 1e-17 1e-17 4e-17)\nrhf hf 0 1k\n.ends"
            ),
            1,
        )
    )
    out = tmp_path / "out"
    # a previous run's results in the folder: they must not stay beside the new libraries
    (out / "libs").mkdir(parents=True)
    (out / "libs" / "user_device.lib").write_text("* another design's device\n")
    (out / "libs" / "mine.lib").write_text("* the designer's own file: stays\n")
    for name in ("report.md", "verify.h5", "read.png"):
        (out / name).write_text("previous run")
    assert cli.main(["verify", str(design), "--out", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "ngspice ran past its 2 s limit" in err
    assert not (out / "verify.h5").exists()
    assert not (out / "report.md").exists() and not (out / "read.png").exists()
    assert (out / "libs" / "mine.lib").read_text().startswith("* the designer's own")
    assert "another design" not in (out / "libs" / "user_device.lib").read_text()
    assert sorted(p.name for p in (out / "libs").glob("user_*")) == [
        "user_device.lib",
        "user_driver.lib",
        "user_integrator.lib",
    ]
    assert len(list((out / "cache").glob("*.h5"))) >= 3  # the jobs without the driver


def test_no_scheduler_leaves_no_output_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run that fails before any simulation finished removes the folder it made (it
    used to leave libs/ and the preflight's run folders)."""
    out = tmp_path / "out"
    args = ["verify", str(_design(tmp_path)), "--out", str(out), "--no-progress"]
    assert cli.main([*args, "--scheduler", "tcp://127.0.0.1:1"]) == 1
    assert "cannot connect to the Dask scheduler" in capsys.readouterr().err
    assert not out.exists()


def test_killed_run_resumes_with_only_the_unfinished_checks(
    tmp_path: Path,
    cli_killed_at_first_job: Callable[[list[str], Path], None],
    cli_in_process: Callable[[list[str]], subprocess.CompletedProcess[str]],
) -> None:
    """``verify`` in its own process on one worker, SIGKILLed (whole process group) once a
    simulation is cached: no report is left, and the rerun takes those jobs from the cache
    untouched and simulates only the rest. Paper A's full tile: its jobs take seconds
    each, so the kill lands between two of them even on a loaded machine."""
    design = _design(tmp_path)
    out = tmp_path / "out"
    cache = out / "cache"
    args = ["verify", str(design), "--out", str(out), "--no-progress", "--jobs", "1"]
    cli_killed_at_first_job(args, cache)
    before = {p.name: p.stat().st_mtime_ns for p in cache.glob("*.h5")}
    assert before and not (out / "verify.h5").exists()
    rerun = cli_in_process(args)
    assert rerun.returncode == 0, rerun.stderr
    n_jobs = len(list(cache.glob("*.h5")))
    assert len(before) < n_jobs
    assert f"({n_jobs} simulation jobs, {len(before)} from the cache)" in rerun.stdout
    after = {p.name: p.stat().st_mtime_ns for p in cache.glob("*.h5")}
    assert all(after[name] == t for name, t in before.items())  # reused, not redone
    assert (out / "verify.h5").is_file()


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[str]:
    import distributed  # a test dependency: missing it fails, never skips

    with distributed.LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


def test_dask_gives_the_process_pool_numbers(tmp_path: Path, dask_cluster: str) -> None:
    tile = SMALL_TILE.replace("512", "128")
    design = _design(tmp_path, tile)
    design.write_text(design.read_text().replace("spice_size = 16", "spice_size = 8"))
    rc_pool, pool = _verify(design, tmp_path / "pool", "--jobs", "2")
    rc_dask, dask = _verify(design, tmp_path / "dask", "--scheduler", dask_cluster)
    assert rc_pool == rc_dask
    assert pool.keys() == dask.keys()
    for name in pool:
        # ngspice is deterministic: the same netlists give the same numbers on any executor
        assert math.isclose(pool[name]["measured"], dask[name]["measured"], rel_tol=1e-12), name
