"""explore: the statistics (penalty, crossing, intervals) on synthetic numbers with known
answers, the grids' validation, per-read σ against the noise budget, and job building."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from rpucircuit import cli
from rpucircuit.config.tile import gokmen_vlasov_2016
from rpucircuit.design import explore as ex
from rpucircuit.design import explore_onoff as eo
from rpucircuit.design import explore_onoff_circuit as ec
from rpucircuit.errors import ConfigError
from rpucircuit.training.loop import TILE_SHAPES

PRESET_FILE = str(Path(__file__).resolve().parents[2] / "models" / "gokmen_vlasov_2016.h5")
"""A shipped model file: a model file's settings are checked against its own RPUConfig."""

# Interpolation results below are exact in real arithmetic; 1e-12 relative covers float64
# rounding of a handful of operations.
REL = 1e-12

# Three seeds' penalties (points) at σ = 0, 0.05, 0.1, 0.2 with different baselines: the
# mean is (0, 0.1, 0.4, 1.2) and the sample std (0, 0, 0.1, 0.2), by construction.
SIGMAS = [0.0, 0.05, 0.1, 0.2]
PENALTIES = np.array([[0.0, 0.1, 0.3, 1.0], [0.0, 0.1, 0.5, 1.4], [0.0, 0.1, 0.4, 1.2]])
BASELINES = np.array([2.0, 2.5, 1.8])


def synthetic_curve() -> ex.PenaltyCurve:
    errors = (BASELINES[:, None] + PENALTIES) / 100.0  # fractions, as the jobs report them
    return ex.penalty_curve(SIGMAS, errors, BASELINES / 100.0)


def test_penalty_is_paired_by_seed() -> None:
    c = synthetic_curve()
    np.testing.assert_allclose(c.penalty_pts, PENALTIES, rtol=0, atol=1e-12)
    np.testing.assert_allclose(c.mean, [0.0, 0.1, 0.4, 1.2], rtol=0, atol=1e-12)
    np.testing.assert_allclose(c.spread, [0.0, 0.0, 0.1, 0.2], rtol=0, atol=1e-12)


def test_acceptable_sigma_and_interval_by_interpolation() -> None:
    """Threshold 0.25: the mean (0.1 → 0.4) crosses at 0.05 + 0.15/0.3·0.05 = 0.075, mean +
    std (0.1 → 0.5) at 0.05 + 0.15/0.4·0.05 = 0.06875, mean − std (0.1 → 0.3) at 0.05 +
    0.15/0.2·0.05 = 0.0875."""
    acc = ex.acceptable(synthetic_curve(), 0.25)
    assert acc.value == pytest.approx(0.075, rel=REL)
    assert acc.low == pytest.approx(0.06875, rel=REL)
    assert acc.high == pytest.approx(0.0875, rel=REL)


def test_one_seed_gives_a_point_interval() -> None:
    c = ex.penalty_curve(SIGMAS, [[0.0, 0.001, 0.004, 0.012]], [0.0])
    acc = ex.acceptable(c, 0.25)
    assert acc.low == acc.value == acc.high == pytest.approx(0.075, rel=REL)


def test_crossing_edges() -> None:
    x = np.array([1.0, 2.0, 4.0])
    assert math.isinf(ex.crossing(x, np.array([0.0, 0.1, 0.2]), 0.3))  # beyond the grid
    assert ex.crossing(x, np.array([0.5, 0.6, 0.7]), 0.3) == 1.0  # starts above
    # in log x: halfway between 2 and 4 in log is 2·√2
    assert ex.crossing(x, np.array([0.0, 0.2, 0.4]), 0.3, log_x=True) == pytest.approx(
        2.0 * math.sqrt(2.0), rel=REL
    )


def test_acceptable_e_n_nan_when_a_quiet_op_amp_already_fails() -> None:
    e = np.array([0.0, 10e-9, 20e-9])
    acc = eo.acceptable_e_n(e, np.array([0.5, 0.8, 1.0]), np.zeros(3), 0.3)
    assert math.isnan(acc.value) and math.isnan(acc.low) and math.isnan(acc.high)
    acc = eo.acceptable_e_n(e, np.array([0.0, 0.2, 0.4]), np.array([0.0, 0.1, 0.1]), 0.3)
    assert acc.value == pytest.approx(15e-9, rel=REL)
    assert acc.low == pytest.approx(10e-9, rel=REL)  # mean + std = 0.3 at 10: not above
    assert acc.high == pytest.approx(20e-9, rel=REL)


def test_smallest_ratio() -> None:
    r = np.array([2.0, 4.0, 8.0])
    # falls through 0.3 halfway (in value) between 4 and 8: 4·√2 in log r
    assert eo.smallest_ratio(r, np.array([1.0, 0.5, 0.1]), 0.3) == pytest.approx(
        4.0 * math.sqrt(2.0), rel=REL
    )
    assert eo.smallest_ratio(r, np.array([0.1, 0.0, 0.0]), 0.3) == 2.0  # at most the first
    assert math.isinf(eo.smallest_ratio(r, np.array([1.0, 0.8, 0.5]), 0.3))
    # not monotone: the last point above decides (every larger ratio must be within);
    # 0.7 → 0.1 passes 0.3 two thirds of the way from 4 to 8 in log r
    assert eo.smallest_ratio(r, np.array([0.1, 0.7, 0.1]), 0.3) == pytest.approx(
        4.0 * 2.0 ** (2.0 / 3.0), rel=REL
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sigmas": (0.02, 0.06)}, r"must start at 0 \(the noiseless baseline"),
        ({"sigmas": (0.0, 0.06, 0.06)}, "must be strictly increasing"),
        ({"sigmas": (0.0,)}, "give at least 2 values"),
        ({"sigmas": (0.0, -0.1)}, "must be >= 0"),
        ({"sigmas": (0.0, math.inf)}, "is not a finite number"),
        ({"seeds": (1, 1)}, r"seeds = \[1, 1\]: repeated"),
        ({"seeds": ()}, "give at least one seed"),
        ({"penalty_pts": 0.0}, "penalty_pts"),
        ({"model": "nonsense"}, "give a preset"),
        ({"model": "missing.h5"}, "no such model file"),
    ],
)
def test_noise_study_refuses_bad_grids(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ex.NoiseStudy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"on_off": (1.0, 2.0)}, r"on_off = \[1.0, 2.0\]: 1.0 must be > 1"),
        ({"e_n_v_per_rthz": (1e-9, 2e-9)}, "must start at 0 .a noiseless op-amp"),
        ({"t_meas_s": (80e-9, 40e-9)}, "t_meas .* must be strictly increasing"),
        ({"t_meas_s": ()}, "give at least one integration time"),
        ({"spice_points": 9}, "spice_points"),
        ({"line_devices": -1}, "line_devices"),
        ({"sigma_target_w": 0.0}, "sigma_target"),
    ],
)
def test_onoff_study_refuses_bad_grids(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        eo.OnOffStudy(**kwargs)  # type: ignore[arg-type]


def test_onoff_refuses_a_fixed_c_int() -> None:
    text = "[periphery]\nc_int_f = 1e-13\n"
    with pytest.raises(ConfigError, match="c_int_f is fixed"):
        eo.OnOffStudy(circuit_toml=text).circuit()


def test_network_lines_follow_the_tiles() -> None:
    lines = ec.network_lines("fc")
    expected = [(o, i) for o, i in TILE_SHAPES["fc"]]
    assert [(ln.layer, ln.direction, ln.n_devices) for ln in lines] == [
        (k, d, n) for k, (o, i) in enumerate(expected) for d, n in (("forward", i), ("backward", o))
    ]
    assert {ln.n_devices for ln in ec.network_lines("cnn", 4096)} == {4096}


def test_line_sigma_is_the_budget_without_adc() -> None:
    """σ of a read = device, op-amp and kT/C of the noise budget in quadrature (the ADC is
    the tile's own quantization); C_int follows t_meas and the ratio through α."""
    base = gokmen_vlasov_2016()
    cfg = ec.point_circuit(base, on_off_ratio=4.0, e_n_v_per_rthz=20e-9, t_meas_s=160e-9)
    assert cfg.c_int_f == pytest.approx(12.0 * cfg.q_unit_c / 1.0, rel=REL)
    line = ec.Line(0, "forward", 257)
    b = ec.line_budget(cfg, line)
    assert b.adc_w > 0
    assert ec.line_sigma_w(cfg, line) == pytest.approx(
        math.sqrt(b.device_thermal_w**2 + b.opamp_w**2 + b.ktc_w**2), rel=REL
    )
    # more op-amp noise, longer lines, a smaller ratio and a shorter window all add noise
    worse = [
        ec.point_circuit(base, on_off_ratio=4.0, e_n_v_per_rthz=40e-9, t_meas_s=160e-9),
        ec.point_circuit(base, on_off_ratio=2.0, e_n_v_per_rthz=20e-9, t_meas_s=160e-9),
        ec.point_circuit(base, on_off_ratio=4.0, e_n_v_per_rthz=20e-9, t_meas_s=80e-9),
    ]
    for w in worse:
        assert ec.line_sigma_w(w, line) > ec.line_sigma_w(cfg, line)
    assert ec.line_sigma_w(cfg, ec.Line(0, "forward", 785)) > ec.line_sigma_w(cfg, line)


def test_analytic_e_n_max_puts_the_longest_line_at_the_target() -> None:
    """The acceptable e_n (from acceptable_opamp_noise_v_per_rthz) put back into the noise
    budget (another code path) gives σ = target on the longest read, less on the others.
    Tolerance 1e-9: both are closed forms."""
    base = gokmen_vlasov_2016()
    lines = ec.network_lines("fc")
    e = ec.analytic_e_n_max(base, lines, on_off_ratio=8.0, t_meas_s=80e-9, sigma_w=0.06)
    cfg = ec.point_circuit(base, on_off_ratio=8.0, e_n_v_per_rthz=e, t_meas_s=80e-9)
    sig = [ec.line_sigma_w(cfg, ln) for ln in lines]
    assert max(sig) == pytest.approx(0.06, rel=1e-9)
    assert sig.index(max(sig)) == 0  # layer 0 forward: 785 devices per line
    # the smallest ratio at that e_n is 8 again (bisection to 1e-6 relative)
    r = ec.analytic_min_on_off(base, lines, e_n_v_per_rthz=e, t_meas_s=80e-9, sigma_w=0.06)
    assert r == pytest.approx(8.0, rel=1e-5)
    # paper A's 4096-device line at 80 ns, on/off 8: a few nV/√Hz, an order less
    e_4096 = ec.analytic_e_n_max(
        base, ec.network_lines("fc", 4096), on_off_ratio=8.0, t_meas_s=80e-9, sigma_w=0.06
    )
    assert 1e-9 < e_4096 < e / 5
    assert math.isnan(
        ec.analytic_e_n_max(base, lines, on_off_ratio=1.5, t_meas_s=20e-9, sigma_w=0.06)
    )


def test_onoff_jobs_share_equal_sigma_sets() -> None:
    """Grid points whose σ agree to 3 significant digits train once (same key); a seed's
    baseline is all-zero σ."""
    study = eo.OnOffStudy(
        schedule=ex.quick_schedule(),
        on_off=(4.0, 8.0),
        e_n_v_per_rthz=(0.0, 10e-9, 10.0000001e-9),
        t_meas_s=(80e-9,),
        seeds=(1, 2),
        spice_points=0,
    )
    sigmas = eo.grid_sigmas(study)
    assert sigmas.shape == (1, 2, 3, 6)
    baselines, grid = eo.onoff_jobs(study, sigmas)
    assert len(baselines) == 2 and len(grid) == 2 * 2 * 3
    keys = [j.key for j in grid]
    assert keys[1] == keys[2] and keys[0] != keys[1]  # seed 1, on/off 4: e_n 10 ≈ 10.0000001
    assert len(set(keys)) == 2 * 2 * 2
    cfg = grid[1].config
    forward = [s.value for s in cfg.model.settings if s.path == "forward.out_noise"]
    assert forward == [eo.round_sigma(float(v)) for v in sigmas[0, 0, 1, 0::2]]
    zero = baselines[0].config.model.settings
    assert all(s.value == 0.0 for s in zero) and len(zero) == 6


def test_noise_jobs_set_both_reads_of_every_layer() -> None:
    study = ex.NoiseStudy(schedule=ex.quick_schedule(), sigmas=(0.0, 0.1), seeds=(3,))
    jobs = ex.noise_jobs(study)
    assert [j.params for j in jobs] == [{"seed": 3, "sigma": 0.0}, {"seed": 3, "sigma": 0.1}]
    rpu = jobs[1].config.rpu_configs()
    assert all(c.forward.out_noise == 0.1 and c.backward.out_noise == 0.1 for c in rpu)
    assert jobs[1].config.lr == 0.1 and jobs[1].config.epochs == 3


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("backward.noise_management=false", False),
        ("forward.noise_management = true", True),
        ("update.bl=31", 31),
        ("device.dw_min=0.002", 0.002),
        ("device.dw_min=1", 1.0),
        ("update.pulse_type=exact", "exact"),
        ("device.dw_min=.001", 0.001),
        ("forward.input_transfer=[1, 0.05]", (1.0, 0.05)),
    ],
)
def test_parse_setting_types(text: str, value: object) -> None:
    got = ex.parse_setting(text)
    assert got == {"path": text.split("=")[0].strip(), "value": value}
    assert type(got["value"]) is type(value)


def test_settings_reach_every_layer_under_the_sigma_grid() -> None:
    """``--set`` changes apply on every analog layer; the study's σ still sets both reads,
    and a changed array model trains under other job keys (no cache reuse across models)."""
    plain = ex.NoiseStudy(schedule=ex.quick_schedule(), sigmas=(0.0, 0.1), seeds=(3,))
    nm_off = ex.NoiseStudy(
        schedule=ex.quick_schedule(),
        sigmas=(0.0, 0.1),
        seeds=(3,),
        settings=("forward.noise_management=false", "backward.noise_management=false"),
    )
    for job in ex.noise_jobs(nm_off):
        rpu = job.config.rpu_configs()
        assert len(rpu) == 3
        assert not any(c.forward.noise_management or c.backward.noise_management for c in rpu)
    assert all(c.backward.out_noise == 0.1 for c in ex.noise_jobs(nm_off)[1].config.rpu_configs())
    plain_keys = {j.key for j in ex.noise_jobs(plain)}
    assert plain_keys.isdisjoint(j.key for j in ex.noise_jobs(nm_off))
    assert all(c.forward.noise_management for c in ex.noise_jobs(plain)[0].config.rpu_configs())
    with pytest.raises(ConfigError, match="set twice"):
        ex.NoiseStudy(settings=("update.bl=5", "update.bl=6"))
    assert "backward.noise_management=false" in ex.model_text("m", nm_off.settings)


def test_training_config_needs_one_sigma_per_layer() -> None:
    with pytest.raises(ConfigError, match="has 3 analog layers"):
        ex.training_config(
            network="fc",
            schedule=ex.quick_schedule(),
            seed=1,
            model="gokmen_vlasov_2016",
            forward=[0.1],
            backward=[0.1],
        )


def test_cnn_on_request_sets_every_read_of_its_four_layers() -> None:
    study = ex.NoiseStudy(
        network="cnn", schedule=ex.quick_schedule(), sigmas=(0.0, 0.06), seeds=(1,)
    )
    rpu = ex.noise_jobs(study)[1].config.rpu_configs()
    assert len(rpu) == 4
    assert all(c.forward.out_noise == 0.06 and c.backward.out_noise == 0.06 for c in rpu)
    onoff = eo.OnOffStudy(
        network="cnn",
        on_off=(4.0, 8.0),
        e_n_v_per_rthz=(0.0, 10e-9),
        t_meas_s=(80e-9,),
        seeds=(1,),
        spice_points=0,
    )
    sigmas = eo.grid_sigmas(onoff)
    assert sigmas.shape == (1, 2, 2, 8)
    # conv1 (16 × 26): its forward row carries 26 devices, the shortest read but one
    assert sigmas[0, 0, 1, 0] < sigmas[0, 0, 1, 2]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["noise", "--sigmas", "0.02,0.06"], "must start at 0"),
        (["noise", "--seeds", "1,1"], "repeated"),
        (["noise", "--model", "nowhere.h5"], "no such model file"),
        (["onoff", "--on-off", "0.5,2"], "must be > 1"),
        (["onoff", "--e-n", "5,10"], "must start at 0"),
        (["onoff", "--spice-points", "7"], "spice_points"),
        (["noise", "--epochs", "0"], "epochs"),
        (["noise", "--set", "forward.noise_management=3"], "must be bool, not int"),
        (["noise", "--set", "backward.out_noise=0.1"], "sets backward.out_noise itself"),
        (["noise", "--set", "backward.noise_management"], "expected PATH=VALUE"),
        (["noise", "--set", "forward.noise_management=True"], "must be bool, not str"),
        (["onoff", "--set", "device.nope=1"], "device has no field 'nope'"),
        (["onoff", "--set", "device.dw_min=nan"], "must be finite"),
        (["noise", "--set", "backward.is_perfect=true"], "exact reads would ignore"),
        (["noise", "--set", "device.k_half_select=-1"], "k_half_select"),
        (["noise", "--set", "update.pulse_type=bogus"], "pulse_type"),
        (
            ["noise", "--model", PRESET_FILE, "--set", "update.pulse_type=x"],
            "pulse_type",
        ),
        (
            ["onoff", "--model", PRESET_FILE, "--set", "device.dw_min=-1"],
            "dw_min",
        ),
    ],
)
def test_cli_refuses_bad_input_in_one_line_before_anything_runs(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert cli.main(["explore", *args, "--out", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_cli_refuses_a_circuit_with_fixed_c_int(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    circuit = tmp_path / "c.toml"
    circuit.write_text("[periphery]\nc_int_f = 1e-13\n", encoding="utf-8")
    out = tmp_path / "out"
    assert cli.main(["explore", "onoff", "--circuit", str(circuit), "--out", str(out)]) == 1
    assert "c_int_f is fixed" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("bad", ["x,1", "1,,2", "1,inf"])
def test_cli_lists_must_be_numbers(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit, match="2"):
        cli.main(["explore", "noise", "--sigmas", bad])
    assert "argument --sigmas" in capsys.readouterr().err
