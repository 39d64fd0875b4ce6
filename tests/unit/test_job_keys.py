"""A training job's cache key follows everything that decides its result.

A training config names its array model by preset name only, so its own key
(:func:`config_key`) cannot see an edited preset factory or a changed default of
:class:`RPUConfig`. A sweep job's key therefore also covers the resolved array model of
every layer (:meth:`TrainingConfig.result_inputs`) and the digest of the code that trains
(:func:`rpucircuit.training.loop.code_digest`, through :func:`job_code_digest`). Before,
the key covered the preset's name and a digest of source files: a preset or default changed
without editing those files (a factory registered from elsewhere, a patched default) reused
stale cached results; the first three tests here failed with that key.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from rpucircuit import jobs as engine
from rpucircuit.config import rpu
from rpucircuit.config.base import config_key
from rpucircuit.config.training import ModelSpec, TrainingConfig
from rpucircuit.training import loop, sweep
from rpucircuit.training.loop import run_job

RPU = TrainingConfig(epochs=1, model=ModelSpec(preset="gokmen_vlasov_2016"))
FP = TrainingConfig(epochs=1, model=ModelSpec(preset="floating_point"))
BASELINES = Path(__file__).parents[2] / "experiments" / "paper-a-baselines.toml"


def sweep_key(cfg: TrainingConfig) -> str:
    """The key a sweep gives a job running ``cfg`` (as :meth:`Experiment.jobs` builds it)."""
    return engine.make_job(cfg, code=engine.job_code_digest(run_job)).key


def test_edited_preset_gives_a_new_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The preset's factory now returns another model (BL 31): same config, new key."""
    before = sweep_key(RPU)
    own_key = config_key(RPU)

    def edited() -> rpu.RPUConfig:
        base = rpu.gokmen_vlasov_2016()
        return dataclasses.replace(base, update=dataclasses.replace(base.update, bl=31))

    monkeypatch.setitem(rpu.PRESETS, "gokmen_vlasov_2016", edited)
    assert config_key(RPU) == own_key  # the config itself cannot tell
    assert sweep_key(RPU) != before
    assert sweep_key(FP) == sweep_key(dataclasses.replace(FP))  # other presets keep theirs


def test_changed_rpu_config_default_gives_a_new_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A default the preset relies on (the device's cycle-to-cycle spread) changes: new key
    for paper A's preset; the floating-point preset sets that field itself, so its key (and
    its cached results) stay."""
    rpu_before, fp_before = sweep_key(RPU), sweep_key(FP)
    defaults = rpu.PulsedDeviceConfig.__init__.__kwdefaults__
    assert defaults["dw_min_ctoc"] == 0.3  # the default this test changes
    monkeypatch.setitem(defaults, "dw_min_ctoc", 0.2)
    assert rpu.gokmen_vlasov_2016().device.dw_min_ctoc == 0.2  # the change took effect
    assert sweep_key(RPU) != rpu_before
    assert sweep_key(FP) == fp_before


def test_experiment_jobs_rekey_after_a_preset_edit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped baselines experiment: editing paper A's preset reruns its case only."""
    exp = sweep.load_experiment(BASELINES)
    before = {str(j.params["case"]): j.key for j in exp.jobs(quick=True)}

    def edited() -> rpu.RPUConfig:
        base = rpu.gokmen_vlasov_2016()
        return dataclasses.replace(base, device=dataclasses.replace(base.device, dw_min=0.002))

    monkeypatch.setitem(rpu.PRESETS, "gokmen_vlasov_2016", edited)
    after = {str(j.params["case"]): j.key for j in exp.jobs(quick=True)}
    assert after["FP"] == before["FP"]
    assert after["RPU baseline"] != before["RPU baseline"]


def test_training_job_key_follows_code_and_model_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A training job's key also covers the model-path code and a model file's contents:
    other code or a replaced file (same path) gives another key, so the cache reruns it."""
    model = tmp_path / "m.h5"
    model.write_bytes(b"first contents")
    cfg = TrainingConfig(epochs=1, model=ModelSpec(file=str(model)))
    key = sweep_key(cfg)
    assert key != config_key(cfg)
    assert sweep_key(cfg) == key  # stable
    assert len(loop.code_digest()) == 16
    assert engine.job_code_digest(run_job) == loop.code_digest()
    model.write_bytes(b"other contents")
    replaced = sweep_key(cfg)
    assert replaced != key
    monkeypatch.setattr(loop, "code_digest", lambda: "0123456789abcdef")
    assert engine.job_code_digest(run_job) == "0123456789abcdef"
    assert sweep_key(cfg) not in (key, replaced)
    model.unlink()  # a missing file keys by its path; the run itself reports it
    assert sweep_key(cfg) != replaced


def test_code_digest_covers_the_model_path() -> None:
    """Every module of rpucircuit/model (packages included), the training loop and data
    loader, and the configs the run resolves are hashed; the sweep and report modules,
    which do not change a job's result, are not (editing them keeps the cache)."""
    root = Path(loop.__file__).resolve().parents[1]
    names = {p.relative_to(root).as_posix() for p in loop._model_path_sources()}
    model = {p.relative_to(root).as_posix() for p in (root / "model").rglob("*.py")}
    assert model and model <= names
    assert {"training/loop.py", "training/data.py"} <= names
    assert {"config/base.py", "config/rpu.py", "config/training.py"} <= names
    assert not {"training/sweep.py", "training/report.py"} & names


KERNEL = '''"""Module docstring."""

import math


def step(v: float, dw: float) -> float:
    """Docstring of step."""
    return min(max(v + dw, -0.6), 0.6)  # clipped


class Tile:
    """Docstring only."""


LIMIT = 0.6
"""An attribute docstring."""
'''


def test_code_digest_ignores_comments_docstrings_and_layout(tmp_path: Path) -> None:
    """A cache outlives an edit that only rewords comments or docstrings or reformats (the
    model path's docstrings change far more often than its code, and every such edit used
    to retrain every cached job); any change to the code itself still gives a new digest."""
    src = tmp_path / "kernel.py"
    src.write_text(KERNEL)
    before = engine.source_digest([src])
    reworded = (
        KERNEL.replace("Docstring of step.", "Another docstring,\n    on two lines.")
        .replace("# clipped", "# clipped to the bounds")
        .replace('"""Module docstring."""', "# a comment instead of the module docstring")
        .replace("(v + dw, -0.6)", "(\n        v + dw,\n        -0.6,\n    )")
        .replace('"""An attribute docstring."""', '"""Reworded."""\n"""And a second one."""')
    )
    src.write_text(reworded)
    assert engine.source_digest([src]) == before
    for edited in (
        KERNEL.replace("-0.6", "-0.5"),  # a constant
        KERNEL.replace("v + dw", "dw + v"),  # operand order (another rounding sequence)
        KERNEL.replace('    """Docstring only."""', '    """Docstring only."""\n    n = 1'),
        KERNEL.replace("import math", "import cmath"),
        KERNEL.replace("LIMIT = 0.6", "LIMIT = 0.5"),
    ):
        src.write_text(edited)
        assert engine.source_digest([src]) != before, edited
    # the file's name counts; a file that is not Python counts byte for byte
    renamed = tmp_path / "kernel2.py"
    renamed.write_text(KERNEL)
    assert engine.source_digest([renamed]) != before
    lib = tmp_path / "device.lib"
    lib.write_text(".subckt dev a b\n* comment\n.ends\n")
    first = engine.source_digest([lib])
    lib.write_text(".subckt dev a b\n* another comment\n.ends\n")
    assert engine.source_digest([lib]) != first
    # source that does not parse is hashed as it is (no error: the import fails elsewhere)
    src.write_text("def broken(:\n")
    broken = engine.source_digest([src])
    src.write_text("def broken(:\n# comment\n")
    assert engine.source_digest([src]) != broken
