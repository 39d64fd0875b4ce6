"""Campaign planning, config parsing and the command's input checks (no simulator)."""

from __future__ import annotations

import dataclasses
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from rpucircuit.circuit import characterize as ch
from rpucircuit.circuit import netlist
from rpucircuit.circuit.characterize import run as ch_run
from rpucircuit.cli import main
from rpucircuit.config.base import config_key
from rpucircuit.config.tile import gokmen_vlasov_2016
from rpucircuit.errors import ConfigError


def test_default_spec_is_paper_a_and_plan_is_complete() -> None:
    spec = ch.load_spec(None)
    assert spec.circuit == gokmen_vlasov_2016()
    jobs = ch.plan(spec.circuit, spec.campaign)
    names = [j.name for j in jobs]
    assert len(names) == len(set(names))
    assert {j.analysis for j in jobs} == set(ch.ANALYSES)
    # Every update response type is there, both polarities.
    updates = [j for j in jobs if j.analysis == "update"]
    assert {j.circuit.device.response for j in updates} == {"rectifying", "linear", "saturating"}
    assert {j.polarity for j in updates} == {1, -1}
    # Job keys are distinct and stable.
    keys = [config_key(j) for j in jobs]
    assert len(set(keys)) == len(keys)
    assert keys == [config_key(j) for j in ch.plan(spec.circuit, spec.campaign)]


def test_plan_has_the_calibration_cases() -> None:
    """The cases a calibration observes: the k cases without a spread, the spread cases
    with the config's (one set of devices), the bound cases near G_on and G_off, noise
    lines of every noise size and the Monte Carlo's, a backward IR-stress case, and a ramp
    whose outer rows overdrive its bound."""
    spec = ch.load_spec(None, quick=True)
    c = spec.campaign
    jobs = {j.name: j for j in ch.plan(spec.circuit, c)}
    k_cases = [j for j in jobs.values() if j.analysis == "update"]
    assert all(j.circuit.device.dw_min_dtod == 0.0 for j in k_cases)
    up, down = jobs["dtod_up"], jobs["dtod_down"]
    assert (up.polarity, down.polarity) == (1, -1)
    assert up.seed == down.seed
    assert up.circuit.device.dw_min_dtod == spec.circuit.device.dw_min_dtod == 0.3
    assert up.circuit.tile.rows == c.update_dtod_size == 8
    for word, pol in (("up", 1), ("down", -1)):
        bound = jobs[f"bound_{word}"]
        assert (bound.analysis, bound.polarity) == ("update_bound", pol)
        assert bound.bound_span_pulses == c.update_bound_span_pulses
        assert bound.circuit.device.dw_min_dtod == 0.0
    sizes = sorted({*c.noise_sizes, c.noise_mc_devices})
    lines = [j for j in jobs.values() if j.analysis == "noise_line"]
    assert sorted(j.n_devices for j in lines) == sizes == [4, 8, 32, 128]
    assert all(j.circuit.tile.cols == j.n_devices for j in lines)
    n = c.transient_size
    assert jobs[f"bwd_ir_stress_{n}"].direction == "backward"
    assert jobs[f"bwd_ir_stress_{n}"].circuit == jobs[f"fwd_ir_stress_{n}"].circuit
    ramp = jobs[f"fwd_ramp_saturating_{n}"].circuit
    # Outer rows: n inputs of 1 at w_max, ramp_overdrive times the bound.
    assert ramp.alpha_effective * c.ramp_overdrive == pytest.approx(n * ramp.device.w_max)
    off = dataclasses.replace(c, ir_stress_backward=False)
    assert f"bwd_ir_stress_{n}" not in {j.name for j in ch.plan(spec.circuit, off)}


def test_spec_toml_round_trips() -> None:
    text = """
[tile]
rows = 8
cols = 8
[tile.row_line]
r_ohm_per_um = 1.0
[device]
on_off_ratio = 4.0
[campaign]
transient_size = 4
op_sizes = [8]
"""
    spec = ch.load_spec(text, source="t.toml")
    assert spec.circuit.tile.rows == 8
    assert spec.circuit.tile.row_line.r_ohm_per_um == 1.0
    assert spec.circuit.tile.row_line.c_f_per_um == 0.2e-15  # rest of the table from the preset
    assert spec.circuit.device.on_off_ratio == 4.0
    assert spec.campaign.op_sizes == (8,)
    again = ch.load_spec(ch.spec_toml(spec), source="again")
    assert again == spec
    assert config_key(again) == config_key(spec)


def test_quick_keeps_explicit_campaign_fields() -> None:
    spec = ch.load_spec("[campaign]\nnoise_mc_trials = 7\n", quick=True)
    assert spec.campaign.noise_mc_trials == 7
    assert spec.campaign.transient_size == ch.quick_campaign().transient_size


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[tile\nrows = 3", "malformed TOML in bad.toml"),
        ("[nonsense]\na = 1\n", r"unknown table \[nonsense\]"),
        ("tile = 3\n", r"\[tile\] must be a table"),
        ("campaign = 3\n", r"\[campaign\] must be a table"),
        ("[device]\nr_mean_ohm = -5.0\n", "r_mean_ohm = -5.0: must be > 0"),
        ("[device]\non_off_ratio = 1.0\n", r"on_off_ratio = 1.0: must lie in \(1"),
        ("[tile.row_line]\nr_ohm_per_um = nan\n", "r_ohm_per_um = nan: must be finite"),
        ("[campaign]\nop_sizes = []\n", "op_sizes = \\(\\): must list at least one size"),
        ("[campaign]\nop_sizes = [0]\n", r"op_sizes\[0\] = 0"),
        ("[campaign]\nline_sizes = [64, 64]\n", "need two different sizes"),
        ("[campaign]\nupdate_k = [1.5]\n", r"update_k\[0\] = 1.5"),
        ("[campaign]\nupdate_k = []\n", "update_k = \\(\\): must list at least one k"),
        ("[campaign]\nbogus = 1\n", "unknown field.*campaign.bogus"),
        ("[campaign]\ntimeout_s = 0\n", "timeout_s = 0.0: must be > 0"),
        ("[campaign]\nupdate_dtod_size = 1\n", "update_dtod_size = 1"),
        ("[campaign]\nupdate_bound_span_pulses = 0\n", "update_bound_span_pulses = 0.0"),
        ("[campaign]\nnoise_sizes = [8, 8, 32]\n", "noise_sizes.*need three different sizes"),
        ("[campaign]\nnoise_sizes = [0, 8, 32]\n", r"noise_sizes\[0\] = 0"),
        ("[campaign]\nramp_overdrive = 1.0\n", r"ramp_overdrive = 1.0: must lie in \(1"),
        ("[device]\ndw_min_dtod = -0.5\n", r"dw_min_dtod = -0.5: must lie in \[0"),
    ],
)
def test_bad_specs_name_the_field(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ch.load_spec(text, source="bad.toml")


def test_plan_refuses_a_transient_too_large_for_spice_with_its_estimate() -> None:
    # 96 × 96: the DC point fits (the config builds) but the transient of the config's own
    # tile is estimated beyond tile.spice_limit_s; refused before anything runs.
    spec = ch.load_spec("[tile]\nrows = 96\ncols = 96\n")
    with pytest.raises(ConfigError, match=r"96 × 96: too large to simulate \(tran\).*estimated"):
        ch.plan(spec.circuit, spec.campaign)
    ok = dataclasses.replace(spec.campaign, include_config_tile=False)
    assert ch.plan(spec.circuit, ok)
    # A tile too large for ngspice is a valid spec (the nodal solver takes any size); its
    # plan is refused, by the noise job on one of its lines, even without the config tile.
    huge = ch.load_spec("[tile]\nrows = 100000\ncols = 100000\n")
    with pytest.raises(ConfigError, match=r"too large to simulate \(noise\)"):
        ch.plan(huge.circuit, dataclasses.replace(huge.campaign, include_config_tile=False))


def test_budget_curve_shape_and_trends() -> None:
    spec = ch.load_spec(None)
    curve = ch.budget_curve(spec.circuit, spec.campaign)
    e_n = curve["e_n_max_v_per_rthz"]
    assert e_n.shape == (len(spec.campaign.t_meas_values_s), len(spec.campaign.on_off_ratios))
    # Along a row (fixed t_meas) the finite entries grow with the on/off ratio; along a
    # column they grow with t_meas (more signal per √time of white noise).
    for row in e_n:
        finite = row[np.isfinite(row)]
        assert np.all(np.diff(finite) > 0)
    col = e_n[:, list(spec.campaign.on_off_ratios).index(8.0)]
    assert np.all(np.diff(col[np.isfinite(col)]) > 0)
    assert curve["max_array_elmore"] == 4096
    assert curve["r_mean_ir_budget_ohm"] == pytest.approx(24.16e6, rel=1e-3)


def test_result_tree_of_nested_dataclasses() -> None:
    @dataclasses.dataclass(frozen=True)
    class Inner:
        a: float

    @dataclasses.dataclass(frozen=True)
    class Outer:
        x: np.ndarray
        inner: Inner
        flag: bool
        name: str
        items: tuple[int, ...]

    tree = ch_run._tree(Outer(x=np.ones(2), inner=Inner(a=1.5), flag=True, name="n", items=(1, 2)))
    assert tree["inner"] == {"a": 1.5}
    assert tree["flag"] == 1
    assert tree["name"] == "n"
    np.testing.assert_array_equal(tree["items"], [1, 2])


def test_command_rejects_bad_input_before_simulating(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[periphery]\nt_meas_s = -1.0\n", encoding="utf-8")
    out = tmp_path / "out"
    assert main(["characterize", str(bad), "--out", str(out)]) == 1
    assert not out.exists()  # nothing was simulated or written
    assert main(["characterize", str(tmp_path / "missing.toml"), "--out", str(out)]) == 1
    assert main(["characterize", "--jobs", "0", "--out", str(out)]) == 1
    assert not out.exists()


def test_command_error_messages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[periphery]\nt_meas_s = -1.0\n", encoding="utf-8")
    main(["characterize", str(bad), "--out", str(tmp_path / "o")])
    assert "t_meas_s = -1.0: must be > 0" in capsys.readouterr().err
    main(["characterize", "--jobs", "0", "--out", str(tmp_path / "o")])
    assert "--jobs = 0: must be >= 1" in capsys.readouterr().err
    main(["characterize", str(tmp_path / "nope.toml")])
    assert "cannot read config file" in capsys.readouterr().err


def test_run_campaign_rejects_bad_worker_count(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="jobs = 0: must be >= 1"):
        ch.run_campaign(ch.load_spec(None, quick=True), tmp_path, n_workers=0)


def test_circuit_parameters_recompute_q_unit() -> None:
    cfg = gokmen_vlasov_2016()
    p = ch.circuit_parameters(cfg)
    # Q_unit = V_read·t_meas·ΔG_unit, recomputed from the stored numbers (rounding only).
    assert p["q_unit_c"] == pytest.approx(p["v_read_v"] * p["t_meas_s"] * p["dg_unit_s"], rel=1e-12)
    assert math.isclose(p["alpha_w"], 12.0, rel_tol=1e-12)


def test_run_job_refuses_unknown_analysis(tmp_path: Path) -> None:
    job = ch.CharacterizationJob(analysis="magic", name="m", circuit=gokmen_vlasov_2016())
    with pytest.raises(ConfigError, match="analysis = 'magic'"):
        ch.run_job(job, workdir=tmp_path)
    assert set(ch_run.RUNNERS) == set(ch.ANALYSES)


@pytest.mark.parametrize("spec_text", [None, "[campaign]\nseed = 7\n"])
def test_toggling_the_config_tile_leaves_other_jobs_unchanged(spec_text: str | None) -> None:
    """Regression: each job was seeded with the campaign seed plus its position in the plan,
    so leaving out the config's own tile reseeded (and, through the key, reran) every later
    job. A job's seed now follows from its own analysis and name: toggling one job leaves
    every other job's seed and key as they were."""
    spec = ch.load_spec(spec_text)
    with_tile = ch.plan(spec.circuit, spec.campaign)
    without = ch.plan(spec.circuit, dataclasses.replace(spec.campaign, include_config_tile=False))
    before = {j.name: (j.seed, config_key(j)) for j in with_tile}
    after = {j.name: (j.seed, config_key(j)) for j in without}
    assert set(before) - set(after) == {"fwd_random_32x32"}
    assert after == {name: before[name] for name in after}
    # Seeds differ between jobs and follow the campaign seed; the two device-to-device
    # cases share one seed on purpose (the same devices, driven up and down).
    own = [j for j in with_tile if j.analysis != "update_dtod"]
    seeds = [j.seed for j in own]
    assert len(set(seeds)) == len(seeds)
    dtod = {j.seed for j in with_tile if j.analysis == "update_dtod"}
    assert dtod == {ch.job_seed(spec.campaign.seed, "update_dtod", "devices")}
    assert not dtod & set(seeds)
    other = ch.plan(spec.circuit, dataclasses.replace(spec.campaign, seed=spec.campaign.seed + 1))
    assert not {j.seed for j in other} & (set(seeds) | dtod)
    assert all(j.seed == ch.job_seed(spec.campaign.seed, j.analysis, j.name) for j in own)


def test_campaign_passes_the_spice_folder_to_its_jobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: the SPICE work folder reached the workers through RPUCIRCUIT_SPICE_DIR,
    which run_campaign set in os.environ (process-wide state that outlives a failed call
    and that concurrent campaigns in one process overwrite). It is now an argument of the
    job function, bound with functools.partial (picklable for the pool and Dask), not part
    of any job's key, and the environment is left alone."""
    import functools
    import os
    import pickle

    seen: dict[str, object] = {}

    class Stop(Exception):
        pass

    def fake_run_jobs(fn: object, jobs: list, **kw: object) -> None:
        seen["fn"] = fn
        seen["keys"] = [j.key for j in jobs]
        seen["env"] = os.environ.get("RPUCIRCUIT_SPICE_DIR")
        raise Stop

    monkeypatch.delenv("RPUCIRCUIT_SPICE_DIR", raising=False)
    monkeypatch.setattr(ch_run, "run_jobs", fake_run_jobs)
    spec = ch.load_spec(None, quick=True)
    keys = []
    for out in (tmp_path / "a", tmp_path / "b"):
        with pytest.raises(Stop):
            ch.run_campaign(spec, out, n_workers=1, progress=False)
        fn = seen["fn"]
        assert isinstance(fn, functools.partial)
        assert fn.func is ch.run_job and fn.args == ()
        assert fn.keywords == {"workdir": (out / "cache" / "spice").resolve()}
        assert fn.keywords["workdir"] == ch.spice_workdir(out)
        again = pickle.loads(pickle.dumps(fn))
        assert again.func is ch.run_job and again.keywords == fn.keywords
        assert seen["env"] is None and "RPUCIRCUIT_SPICE_DIR" not in os.environ
        keys.append(seen["keys"])
    assert keys[0] == keys[1]  # the folder is not part of any job's key


def test_job_key_changes_with_the_result_layout() -> None:
    """A cache written under another result schema is never taken for this one (its keys
    differ), so a rerun after a layout change recomputes instead of failing on old trees."""
    job = ch.plan(gokmen_vlasov_2016(), ch.CampaignConfig())[0]
    assert job.result_schema == ch.SCHEMA_VERSION
    older = dataclasses.replace(job, result_schema=ch.SCHEMA_VERSION - 1)
    assert config_key(older) != config_key(job)


def test_job_key_changes_with_the_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache is reused only by the same analysis code: the digest of the code that computes
    a job (modules and SPICE libraries) is part of its key."""
    job = ch.plan(gokmen_vlasov_2016(), ch.CampaignConfig())[0]
    assert job.code == ch.code_digest() and len(job.code) == 16
    int(job.code, 16)  # hex digits
    assert config_key(dataclasses.replace(job, code="0" * 16)) != config_key(job)
    # an edited .lib file changes the digest (computed afresh, bypassing the cache)
    libs = tmp_path / "netlists"
    shutil.copytree(netlist.NETLIST_DIR, libs)
    monkeypatch.setattr(netlist, "NETLIST_DIR", libs)
    same = ch.code_digest.__wrapped__()
    assert same == ch.code_digest()
    lib = sorted(libs.glob("*.lib"))[0]
    lib.write_text(lib.read_text() + "\n* edited\n")
    assert ch.code_digest.__wrapped__() != same
