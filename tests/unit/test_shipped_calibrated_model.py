"""The shipped calibrated model (models/gokmen_vlasov_2016_calibrated.h5) and the committed
full campaign it was calibrated from (sim_data/paper-a/): they belong together, every
validation row passes, and training builds both networks from the file. No simulation:
`make models` remakes both files (from the campaign's cache: byte for byte)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rpucircuit import store
from rpucircuit.calibration.noise import analytic_sigma
from rpucircuit.circuit import characterize
from rpucircuit.config.training import ModelSpec, TrainingConfig
from rpucircuit.model.modelfile import check_characterization, file_sha256, load_model
from rpucircuit.training.loop import TILE_SHAPES, build_network

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "gokmen_vlasov_2016_calibrated.h5"
CHARACTERIZATION = "sim_data/paper-a/characterization.h5"
"""As the Makefile's calibrate command names it (relative to the repository root)."""


def test_links_the_committed_characterization() -> None:
    """The model names the committed campaign and its sha256 (if this fails, the
    characterization was re-simulated or the model rebuilt from another file: run
    `make models` and commit sim_data/paper-a/ and models/ together)."""
    loaded = load_model(MODEL)
    link = loaded.model.characterization
    assert link is not None, "the calibrated model names no characterization file"
    assert link.path == CHARACTERIZATION
    assert link.sha256 == file_sha256(ROOT / CHARACTERIZATION)
    assert check_characterization(loaded, ROOT / CHARACTERIZATION) == ROOT / CHARACTERIZATION
    prov = store.read_provenance(ROOT / CHARACTERIZATION)
    assert prov.kind == "characterization"
    assert link.config_key == prov.config_key
    assert loaded.model.source == f"calibrated from {CHARACTERIZATION}"
    assert loaded.provenance.ngspice_version == prov.ngspice_version


def test_full_campaign_not_quick() -> None:
    """The committed campaign is the default (full) one: 16 × 16 transient tiles, paper A's
    own 32 × 32 tile, DC points at 32 and 64 (the quick campaign has 8 × 8 and 16)."""
    loaded = load_model(MODEL)
    cases = {p for par in loaded.model.parameters for p in par.sources}
    cases |= {c.case for c in loaded.model.validation if c.case}
    for case in (
        "transfer/fwd_random_16",
        "transfer/op_fwd_random_32",
        "transfer/op_fwd_random_64",
        "transfer/fwd_random_32x32",
    ):
        assert case in cases, f"{case} missing: not the full campaign"


def test_every_validation_row_passes() -> None:
    """Every held-out read, every read with physics the preset lacks, both update cycles
    and k are within their tolerances (docs/calibration.md: reads ≤ 0.3 % of α rms, updates
    ≤ 2 % of the largest step, k within 2 % of 0.1)."""
    rows = load_model(MODEL).model.validation
    assert len(rows) == 13  # k, 8 reads, 2 update cycles, σ at N = 1024 and 2048
    failed = [r.name for r in rows if not r.passed]
    assert failed == [], f"validation rows beyond their tolerance: {failed}"
    for row in rows:
        if row.is_case and row.quantity.endswith("_read"):
            assert row.tolerance == 0.3 and row.unit == "% of alpha"
            # the calibrated read is closer to ngspice than the hand-set preset's, everywhere
            assert row.rms_error < row.preset_rms_error, row.name
        elif row.is_case:
            assert row.quantity == "update" and row.tolerance == 2.0
        elif row.name.startswith("out_noise_sigma_n"):
            # σ² = a + b·N + c·N² against the analytic budget at long lines, 0.006 w
            assert row.unit == "w" and row.tolerance == 0.006
        else:
            assert row.name == "k_half_select" and row.tolerance == 0.002


def test_held_out_cases_fit_nothing() -> None:
    """The default held-out policy: the largest of each repeated family and the read no fit
    uses; no parameter names them as a source."""
    loaded = load_model(MODEL)
    held_out = {
        "transfer/fwd_no_line_16",
        "transfer/fwd_random_32x32",
        "transfer/op_fwd_random_64",
    }
    for case in held_out:
        assert case in loaded.provenance.config_toml
    sources = {s for p in loaded.model.parameters for s in p.sources}
    assert not sources & held_out


@pytest.mark.parametrize("network", ["fc", "cnn"])
def test_training_builds_the_network(network: str) -> None:
    """Every tile of both networks gets the file's RPUConfig for its shape: σ from the
    noise model for each read's line length, the fitted read gains, Δw_min and k."""
    loaded = load_model(MODEL)
    noise = loaded.model.out_noise
    assert noise is not None
    cfg = TrainingConfig(network=network, model=ModelSpec(file=str(MODEL)))  # type: ignore[arg-type]
    net = build_network(cfg, rng=np.random.default_rng(0), update_thread=False)
    assert [(t.out_size, t.in_size) for t in net.tiles] == list(TILE_SHAPES[network])
    rpu = loaded.model.rpu
    for tile in net.tiles:
        c = tile.config
        # σ = sqrt(a + b·N + c·N²), the same formula on the same floats: equal to rounding
        assert c.forward.out_noise == pytest.approx(noise.sigma(tile.in_size), rel=1e-12)
        assert c.backward.out_noise == pytest.approx(noise.sigma(tile.out_size), rel=1e-12)
        assert c.forward.read_gain == rpu.forward.read_gain
        assert c.backward.read_gain == rpu.backward.read_gain
        assert c.device == rpu.device
        # the forward read's IR-drop map is the file's for this shape: attenuation < 1 somewhere
        assert tile.get_attenuation().min() < 1.0


def test_noise_model_has_the_n_squared_term() -> None:
    """σ² = a + b·N + c·N² with c > 0; independent reference: the analytic budget of paper A's
    circuit (rpucircuit.circuit.analytic.noise_budget) at N = 1024 is 0.0357 w, and the
    model's σ there is within 0.006 w (measured 0.0343: −3.8 %); the straight line the file
    held before missed it by 0.0046 w (−13 %)."""
    noise = load_model(MODEL).model.out_noise
    assert noise is not None and noise.c > 0.0
    tree, _ = characterize.load(ROOT / CHARACTERIZATION)
    reference = analytic_sigma(tree, 1024)
    assert reference == pytest.approx(0.0357, rel=0.01)
    assert noise.sigma(1024) == pytest.approx(reference, abs=0.006)
    assert noise.sigma(1024) == pytest.approx(reference, rel=0.05)
    # a 16 × 26 conv1 tile reads quieter than a 256 × 785 FC tile
    assert noise.sigma(26) < noise.sigma(785)
