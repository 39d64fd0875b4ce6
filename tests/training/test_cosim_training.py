"""Circuit spot checks during a short real training run (``[cosim]``, real ngspice): the
training result is bit-identical with and without them, their records land in history.h5
and survive --resume, and a bad table fails before training starts."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from rpucircuit import cli, store
from rpucircuit.calibration import cosim

pytestmark = [pytest.mark.training, pytest.mark.sim]

BASE = """
network = "fc"
epochs = 2
lr = 0.1
seed = 3
n_train = 300
n_test = 200

[model]
preset = "gokmen_vlasov_2016"
"""

COSIM = """
[cosim]
block_rows = 16
block_cols = 16
block_offset = [0, 120]
time_limit_s = 120
"""


def write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def run(config: Path, out: Path, *extra: str) -> int:
    return cli.main(["train", str(config), "--out", str(out), "--no-progress", *extra])


def assert_same(a: Mapping[str, object], b: Mapping[str, object], where: str = "") -> None:
    assert set(a) == set(b), where
    for k in a:
        va, vb = a[k], b[k]
        if isinstance(va, Mapping):
            assert isinstance(vb, Mapping)
            assert_same(va, vb, f"{where}/{k}")
        elif isinstance(va, str):
            assert va == vb, f"{where}/{k}"
        else:
            np.testing.assert_array_equal(va, vb, err_msg=f"{where}/{k}")  # exact


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same run without and with spot checks, and with them split by --stop-after 1 and
    --resume (each 300 images × 2 epochs; MNIST from the cache the session fixture fills)."""
    tmp = tmp_path_factory.mktemp("cosim")
    plain = write(tmp, "plain.toml", BASE)
    checked = write(tmp, "checked.toml", BASE + COSIM)
    out = {"plain": tmp / "plain", "checked": tmp / "checked", "resumed": tmp / "resumed"}
    assert run(plain, out["plain"]) == 0
    assert run(checked, out["checked"]) == 0
    assert run(checked, out["resumed"], "--stop-after", "1") == 0
    assert run(checked, out["resumed"], "--resume") == 0
    return out


def test_spot_checks_leave_training_bit_identical(runs: dict[str, Path]) -> None:
    """Final weights, device parameters and every generator's state, and the per-epoch loss
    and test error: exactly equal with and without [cosim]."""
    a, _ = store.load(runs["plain"] / "checkpoint.h5", kind="checkpoint")
    b, _ = store.load(runs["checked"] / "checkpoint.h5", kind="checkpoint")
    assert_same(a["network"], b["network"])
    assert a["order_rng"] == b["order_rng"]
    ha, _ = store.load(runs["plain"] / "history.h5", kind="history")
    hb, _ = store.load(runs["checked"] / "history.h5", kind="history")
    for key in ("train_loss", "test_error"):
        np.testing.assert_array_equal(ha[key], hb[key])
    assert "cosim" not in ha


def test_records_in_history_and_plot(runs: dict[str, Path]) -> None:
    """Three FC layers after each of 2 epochs, 16 × 16 blocks at column 120 (layer 2's cut at
    its edges: 10 rows, 9 columns), every analysis finished; the
    differences are small fractions of α (paper A: mostly the DAC and ADC steps of the
    model against the drivers' finer step; measured 0.1-0.4 % of α)."""
    h, _ = store.load(runs["checked"] / "history.h5", kind="history")
    rec = h["cosim"]
    assert set(rec) == set(cosim.COLUMNS)
    np.testing.assert_array_equal(rec["epoch"], [1, 1, 1, 2, 2, 2])
    np.testing.assert_array_equal(rec["layer"], [0, 1, 2, 0, 1, 2])
    np.testing.assert_array_equal(rec["block_col"], [120] * 6)
    assert list(rec["status"]) == ["ok"] * 6, list(rec["message"])
    assert list(rec["block_rows"]) == [16, 16, 10] * 2
    assert list(rec["block_cols"]) == [16, 16, 9] * 2
    for a in cosim.ANALYSES:
        rms, worst = rec[f"{a}_rms_pct"], rec[f"{a}_max_pct"]
        assert np.all(np.isfinite(rms)) and np.all(rms <= worst)
        assert np.all(worst < 5.0)  # % of α
    assert (runs["checked"] / "cosim_error.png").stat().st_size > 0


def test_records_survive_resume(runs: dict[str, Path]) -> None:
    """--stop-after 1 then --resume: the records of epoch 1 come from the checkpoint, the
    training result and the records' figures equal the unbroken run's."""
    full, _ = store.load(runs["checked"] / "history.h5", kind="history")
    resumed, _ = store.load(runs["resumed"] / "history.h5", kind="history")
    for key in ("train_loss", "test_error"):
        np.testing.assert_array_equal(full[key], resumed[key])
    a, b = full["cosim"], resumed["cosim"]
    np.testing.assert_array_equal(a["epoch"], b["epoch"])
    for c in cosim.COLUMNS:
        if c.endswith("_pct"):
            np.testing.assert_array_equal(a[c], b[c])  # same weights, inputs and circuit


def test_a_bad_cosim_table_fails_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A block starting outside a layer is refused, naming the field, before anything is
    trained or written."""
    bad = write(tmp_path, "bad.toml", BASE + COSIM.replace("[0, 120]", "[0, 800]"))
    out = tmp_path / "out"
    assert run(bad, out) == 1
    err = capsys.readouterr().err
    assert "cosim.block_offset = [0, 800]" in err and "785" in err
    assert not out.exists()


def test_timeouts_are_recorded_and_training_goes_on(runs: dict[str, Path], tmp_path: Path) -> None:
    """A 0.01 s limit: every check times out, each row says so, and the run ends with the
    weights of the run without checks."""
    tiny = write(
        tmp_path, "tiny.toml", BASE + COSIM.replace("time_limit_s = 120", "time_limit_s = 0.01")
    )
    out = tmp_path / "tiny"
    assert run(tiny, out) == 0
    h, _ = store.load(out / "history.h5", kind="history")
    assert list(h["cosim"]["status"]) == ["timeout"] * 6
    assert all("time limit" in m for m in h["cosim"]["message"])
    assert np.all(np.isnan(h["cosim"]["spice_tran_rms_pct"]))
    a, _ = store.load(runs["plain"] / "checkpoint.h5", kind="checkpoint")
    b, _ = store.load(out / "checkpoint.h5", kind="checkpoint")
    assert_same(a["network"], b["network"])
