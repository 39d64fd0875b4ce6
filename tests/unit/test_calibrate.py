"""``rpucircuit calibrate`` on the committed reference campaign
(``sim_data/reference/characterization.h5``, a quick campaign of paper A's tile): the model
file it writes, its held-out cases, its validation against ngspice beside paper A's preset,
and its refusals (one line, nothing written).

The numbers the reference file gives are quoted in the comments, so a change in them shows
up as a change in a number; the targets asserted are calibration's own
(:mod:`rpucircuit.calibration.validate`), never loosened here.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
from pathlib import Path
from typing import Any

import h5py
import pytest

from rpucircuit.calibration import validate as val
from rpucircuit.calibration.base import FittedParameter
from rpucircuit.calibration.fit import by_name, fit_all
from rpucircuit.calibration.model import CalibrationConfig, calibrated_rpu, ir_drop, noise_model
from rpucircuit.circuit import characterize as ch
from rpucircuit.cli import main
from rpucircuit.config.rpu import gokmen_vlasov_2016
from rpucircuit.errors import ConfigError
from rpucircuit.model.modelfile import file_sha256, load_model

REFERENCE = Path(__file__).resolve().parents[2] / "sim_data" / "reference" / ch.RESULT_NAME
DEFAULT_HELD_OUT = ("transfer/fwd_no_line_8", "transfer/fwd_random_32x32")
"""What the automatic policy holds out of the reference file: the one transfer case no fit
reads (every other case is the only one of its kind, so a fit needs it)."""


@pytest.fixture(scope="module")
def tree() -> dict[str, Any]:
    tree, _ = ch.load(REFERENCE)
    return tree


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The command run once on the reference file: (model file, plots folder)."""
    folder = tmp_path_factory.mktemp("calibrate")
    out, plots = folder / "model.h5", folder / "plots"
    assert main(["calibrate", str(REFERENCE), "--out", str(out), "--plots", str(plots)]) == 0
    return out, plots


def _fail(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run a failing command; its one-line error."""
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, err
    assert "Traceback" not in err
    return err


# --------------------------------------------------------------------------- the model file


def test_model_file_holds_the_fitted_config_and_provenance(calibrated: tuple[Path, Path]) -> None:
    out, _ = calibrated
    loaded = load_model(out)
    m = loaded.model
    table = {p.name: p for p in m.parameters}
    # what the fits give: α = 12 (the ramp's clipped outputs), k = 0.10115, dw_min 9.805e-4
    assert m.rpu.forward.out_bound == table["out_bound"].value
    assert m.rpu.backward.out_bound == table["out_bound"].value
    assert m.rpu.device.k_half_select == table["k_half_select"].value
    assert m.rpu.device.dw_min == table["dw_min"].value
    assert m.rpu.device.dw_min_dtod == table["dw_min_dtod"].value
    assert m.rpu.forward.inp_res == table["inp_res"].value
    # σ of the characterized 32 × 32 tile from σ² = a + b·N + c·N² (exact: the same formula)
    assert m.out_noise is not None
    assert m.rpu.forward.out_noise == m.out_noise.sigma(32)
    assert m.out_noise.a == table["out_noise_a"].value
    assert m.out_noise.c == table["out_noise_c"].value > 0.0
    # the preset's structure: noise and bound management as paper A's baseline
    preset = gokmen_vlasov_2016()
    assert m.rpu.forward.bound_management == preset.forward.bound_management
    assert m.rpu.backward.bound_management == preset.backward.bound_management
    assert m.rpu.update == preset.update
    # per-read IR drop from the DC fit (forward) and the backward IR-stress fit
    assert m.ir_drop is not None
    assert m.ir_drop.forward.segment_ratio == table["segment_ratio"].value
    assert m.ir_drop.backward.segment_ratio == table["segment_ratio_backward"].value
    # a linear, time-encoded tile: its input transfer is the identity (none stored)
    assert m.forward_input_transfer is None
    assert m.characterization is not None
    assert m.characterization.sha256 == file_sha256(REFERENCE)
    assert loaded.provenance.ngspice_version.startswith("ngspice")
    assert "fwd_no_line_8" in loaded.provenance.config_toml
    assert m.fit_report.startswith("# Calibration report")
    assert "## Validation targets" in m.fit_report


def test_parameter_origins(calibrated: tuple[Path, Path]) -> None:
    table = {p.name: p for p in load_model(calibrated[0]).model.parameters}
    for name in ("tau_sum_forward_s", "read_gain_backward", "segment_ratio", "out_bound"):
        assert table[name].origin == "fitted", name
        assert table[name].residual <= table[name].tolerance, name
    for name in ("inp_res", "out_res", "dw_min_ctoc"):
        assert table[name].origin == "config", name
    # preset values the circuit does not give are listed as config rows
    assert table["update.bl"].origin == "config"
    assert table["update.bl"].value == gokmen_vlasov_2016().update.bl
    assert table["update.bl"].sources == ("preset gokmen_vlasov_2016",)


def test_held_out_cases_are_in_no_parameters_sources(calibrated: tuple[Path, Path]) -> None:
    m = load_model(calibrated[0]).model
    for p in m.parameters:
        assert not set(p.sources) & set(DEFAULT_HELD_OUT), p.name


def test_validation_rows_have_preset_columns(calibrated: tuple[Path, Path]) -> None:
    rows = {r.name: r for r in load_model(calibrated[0]).model.validation}
    expected = {
        "forward_read/fwd_no_line_8",
        "forward_read/fwd_ir_stress_8",
        "backward_read/bwd_ir_stress_8",
        "forward_read/fwd_sinh_amplitude_8",
        "forward_read/fwd_sinh_time_8",
        "forward_read/fwd_ramp_saturating_8",
        "update/rectifying_k0p1_up",
        "update/rectifying_k0p1_down",
        "k_half_select",
        "out_noise_sigma_n1024",
        "out_noise_sigma_n2048",
    }
    assert expected <= set(rows)
    for name, r in rows.items():
        if name == "k_half_select":
            # 0.10115 against the device model's 0.1: 1.15 % < 2 %
            assert abs(r.predicted - r.reference) <= r.tolerance
            continue
        if name.startswith("out_noise_sigma_n"):
            # σ(N) of the noise model against the analytic budget: 0.0343 vs 0.0357 at
            # N = 1024, 0.0551 vs 0.0587 at 2048, each within 0.006 w
            assert r.unit == "w"
            assert abs(r.predicted - r.reference) <= r.tolerance == 0.006, name
            assert r.predicted < r.reference  # the gain's fall with N is left out
            continue
        assert r.unit in ("% of alpha", "% of largest step")
        assert not math.isnan(r.preset_rms_error), name
        assert not math.isnan(r.preset_max_error), name
        assert r.rms_error <= r.max_error
        assert r.rms_error <= r.tolerance, name


def test_plots_written(calibrated: tuple[Path, Path]) -> None:
    _, plots = calibrated
    for name in ("model_vs_spice.png", "error_vs_position.png"):
        assert (plots / name).stat().st_size > 1000, name


def test_same_input_gives_the_same_bytes(calibrated: tuple[Path, Path], tmp_path: Path) -> None:
    again = tmp_path / "again.h5"
    argv = ["calibrate", str(REFERENCE), "--out", str(again), "--plots", str(tmp_path / "p")]
    assert main(argv) == 0
    assert file_sha256(again) == file_sha256(calibrated[0])


def test_plots_default_beside_the_model(tmp_path: Path) -> None:
    out = tmp_path / "m.h5"
    assert main(["calibrate", str(REFERENCE), "--out", str(out)]) == 0
    assert (tmp_path / "m_plots" / "model_vs_spice.png").exists()


# --------------------------------------------------------------------------- validation


def test_calibrated_read_is_closer_than_the_preset(tree: dict[str, Any]) -> None:
    """The physics paper A's preset lacks: on the reference file the preset misses the
    IR-stress reads by 0.023 % (forward) and 0.082 % (backward) of α rms, the sinh
    amplitude-encoded read by 2.1 %; the calibrated model by 0.0037 %, 0.0055 % and 0.00015 %
    (ratios 6.3, 14.9, 1.4e4). Asserted: the 5× of the validation target on each, though
    the IR-stress preset errors are under the 0.1 % at which that target applies."""
    params = by_name(val.fit_held_out(tree, DEFAULT_HELD_OUT, fit_all))
    v = val.validate(tree, params, ir_drop(params), gokmen_vlasov_2016(), DEFAULT_HELD_OUT)
    reads = {r.case: r for r in v.reads}
    for case in (
        "transfer/fwd_ir_stress_8",
        "transfer/bwd_ir_stress_8",
        "transfer/fwd_sinh_amplitude_8",
    ):
        r = reads[case]
        assert r.ratio >= val.CLOSER_FACTOR, (case, r.rms, r.preset_rms)
    assert reads["transfer/fwd_sinh_amplitude_8"].closer_met is True
    assert reads["transfer/fwd_ir_stress_8"].closer_met is None  # preset within 0.1 %
    assert all(met for _, met, _ in v.targets())


def test_held_out_reads_within_target(tree: dict[str, Any]) -> None:
    """The held-out reads: the no-line 8 × 8 read (the gain from τ_sum; no lines) and the
    transient read of the config's own 32 × 32 tile (the gain of its longer lines from the
    8 × 8 case's τ_sum, and the IR-drop map from the DC point): both far within 0.3 % of α,
    and the 32 × 32 read ≥ 5× closer than the preset."""
    params = by_name(val.fit_held_out(tree, DEFAULT_HELD_OUT, fit_all))
    v = val.validate(tree, params, ir_drop(params), gokmen_vlasov_2016(), DEFAULT_HELD_OUT)
    reads = {r.case: r for r in v.reads if r.role == "held-out"}
    assert sorted(reads) == sorted(DEFAULT_HELD_OUT)
    for r in reads.values():
        assert r.rms <= val.READ_RMS_TARGET
    big = reads["transfer/fwd_random_32x32"]
    assert big.direction == "forward"
    assert big.closer_met is True


def test_a_validation_miss_is_recorded_not_refused(tree: dict[str, Any]) -> None:
    """A summing-node time constant 100 times the fitted one (read gain ~12 % low on the
    8 × 8 cases) misses the held-out read's 0.3 % of α: the target is reported missed and
    the report says so (validation records misses; only fits refuse)."""
    from rpucircuit.calibration.report import fit_report

    params = by_name(fit_all(tree))
    tau = params["tau_sum_forward_s"]
    bad: dict[str, FittedParameter] = {
        **params,
        "tau_sum_forward_s": dataclasses.replace(tau, value=100.0 * tau.value),
    }
    v = val.validate(tree, bad, ir_drop(bad), gokmen_vlasov_2016(), DEFAULT_HELD_OUT)
    missed = [name for name, met, _ in v.targets() if not met]
    assert any("held-out read transfer/fwd_no_line_8" in n for n in missed)
    report = fit_report(
        char_path="x.h5",
        held_out=DEFAULT_HELD_OUT,
        params=tuple(bad.values()),
        validation=v,
        preset="p",
    )
    assert "Missed:" in report


def test_default_held_out_takes_the_largest_of_a_family(tree: dict[str, Any]) -> None:
    """The quick campaign has two forward random transients (8 × 8 and the config's own
    32 × 32): the larger is held out and the other serves the gain fit; a third, middle one
    serves it too."""
    held = val.default_held_out(tree, fit_all)
    assert held == DEFAULT_HELD_OUT
    params = by_name(val.fit_held_out(tree, held, fit_all))
    assert params["tau_sum_forward_s"].sources == ("transfer/fwd_random_8",)
    transfer = dict(tree["transfer"])
    transfer["fwd_random_16"] = transfer["fwd_random_8"]
    bigger = {**tree, "transfer": transfer}
    held = val.default_held_out(bigger, fit_all)
    assert "transfer/fwd_random_32x32" in held
    assert "transfer/fwd_random_16" not in held and "transfer/fwd_random_8" not in held
    params = by_name(val.fit_held_out(bigger, held, fit_all))
    assert params["tau_sum_forward_s"].sources == (
        "transfer/fwd_random_16",
        "transfer/fwd_random_8",
    )


def test_calibrated_rpu_sets_the_noise_per_direction(tree: dict[str, Any]) -> None:
    params = by_name(fit_all(tree))
    rpu, _ = calibrated_rpu(tree, params)
    noise = noise_model(params)
    assert rpu.forward.out_noise == noise.sigma(32)
    assert rpu.backward.out_noise == noise.sigma(32)


# --------------------------------------------------------------------------- refusals


def _nothing_written(folder: Path) -> None:
    assert sorted(p.name for p in folder.iterdir() if p.name != "char.h5") == []


def test_missing_case_names_it_and_the_campaign_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    char = tmp_path / "char.h5"
    shutil.copyfile(REFERENCE, char)
    with h5py.File(char, "a") as f:
        del f["transfer/fwd_ramp_saturating_8"]
    err = _fail(["calibrate", str(char), "--out", str(tmp_path / "m.h5")], capsys)
    assert "out_bound" in err
    assert "transfer/fwd_ramp_saturating_<N>" in err
    assert "transient_size" in err
    _nothing_written(tmp_path)


@pytest.mark.parametrize("kind", ["truncated", "foreign", "garbage"])
def test_unreadable_file_is_one_line_naming_it(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    char = tmp_path / "char.h5"
    if kind == "truncated":
        char.write_bytes(REFERENCE.read_bytes()[:5000])
    elif kind == "foreign":
        shutil.copyfile(Path(__file__).parent / "fixtures" / "model_schema1.h5", char)
    else:
        char.write_bytes(b"not an hdf5 file")
    err = _fail(["calibrate", str(char), "--out", str(tmp_path / "m.h5")], capsys)
    assert str(char) in err
    _nothing_written(tmp_path)


def test_held_out_case_a_fit_needs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["calibrate", str(REFERENCE), "--out", str(tmp_path / "m.h5")]
    err = _fail([*argv, "--held-out", "transfer/fwd_random_*"], capsys)
    assert "tau_sum_forward_s" in err
    assert "held-out cases transfer/fwd_random_32x32, transfer/fwd_random_8" in err
    assert not list(tmp_path.iterdir())


def test_held_out_pattern_naming_no_case(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["calibrate", str(REFERENCE), "--out", str(tmp_path / "m.h5")]
    err = _fail([*argv, "--held-out", "transfer/nothing_*"], capsys)
    assert "names no case" in err
    assert not list(tmp_path.iterdir())


def test_config_file_and_held_out_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "cal.toml"
    cfg.write_text('preset = "gokmen_vlasov_2016"\nheld_out = ["transfer/fwd_no_line_*"]\n')
    out = tmp_path / "m.h5"
    assert main(["calibrate", str(REFERENCE), "--out", str(out), "--config", str(cfg)]) == 0
    assert "fwd_no_line_8" in load_model(out).provenance.config_toml
    capsys.readouterr()
    bad = tmp_path / "bad.toml"
    bad.write_text('held_out = ["fwd_no_line_8"]\n')
    err = _fail(
        ["calibrate", str(REFERENCE), "--out", str(tmp_path / "x.h5"), "--config", str(bad)], capsys
    )
    assert "held_out entry 'fwd_no_line_8'" in err
    assert not (tmp_path / "x.h5").exists()


def test_config_refuses_bad_values() -> None:
    with pytest.raises(ConfigError, match="preset"):
        CalibrationConfig(preset="nope")
    with pytest.raises(ConfigError, match="held_out entry"):
        CalibrationConfig(held_out=("no_group",))
