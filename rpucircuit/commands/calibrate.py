"""``rpucircuit calibrate CHAR.h5 --out MODEL.h5``: fit the behavioral array model to a
characterization file and validate it on held-out circuit runs.

Reads the characterization file, holds out validation cases (``--held-out`` or the config's
``held_out``; by default every transfer case no fit reads and the largest of each repeated
family), fits every parameter on the rest, builds the calibrated RPUConfig with per-read
IR-drop models and the output-noise model, checks the behavioral read and update against
ngspice beside the uncalibrated preset, and writes a schema-2 model file
(``docs/model-file.md``) with the parameters, validation rows and fit report, plus plots.
A fit whose residual is out of tolerance refuses (nothing written); a validation target
missed is recorded in the report and the file. See ``docs/calibration.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Positional characterization file, ``--out``, ``--config``, ``--held-out``, ``--plots``."""
    parser.add_argument("characterization", type=Path, help="characterization file (.h5)")
    parser.add_argument("--out", type=Path, required=True, help="model file to write (.h5)")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="calibration config TOML (preset, held_out); default: paper A's preset, "
        "automatic held-out cases",
    )
    parser.add_argument(
        "--held-out",
        action="append",
        default=None,
        metavar="CASE",
        help="case kept out of every fit, e.g. transfer/fwd_no_line_8 (shell patterns "
        "allowed; repeatable; replaces the config's held_out)",
    )
    parser.add_argument(
        "--plots",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder for the plots (default: <out stem>_plots beside the model file)",
    )


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from rpucircuit.calibration import model as cal_model
    from rpucircuit.calibration import report
    from rpucircuit.calibration import validate as val
    from rpucircuit.calibration.fit import by_name, fit_all
    from rpucircuit.circuit.characterize import load
    from rpucircuit.config.base import from_toml, read_toml_file
    from rpucircuit.config.rpu import PRESETS
    from rpucircuit.model import modelfile

    char_path: Path = args.characterization
    cfg = cal_model.CalibrationConfig()
    if args.config is not None:
        read_toml_file(args.config)  # one-line error for a missing or malformed file
        cfg = from_toml(
            cal_model.CalibrationConfig,
            args.config.read_text(encoding="utf-8"),
            source=str(args.config),
        )
    if args.held_out is not None:
        cfg = dataclasses.replace(cfg, held_out=tuple(args.held_out))

    tree, prov = load(char_path)
    held = val.resolve_held_out(tree, cfg.held_out, fit_all)
    fitted = val.fit_held_out(tree, held, fit_all)
    params = by_name(fitted)
    rpu, preset_rows = cal_model.calibrated_rpu(tree, params, cfg.preset)
    ir = cal_model.ir_drop(params)
    noise = cal_model.noise_model(params)
    preset = PRESETS[cfg.preset]()
    validation = val.validate(tree, params, ir, preset, held)
    table = (*fitted, *preset_rows)
    sigma_fwd, sigma_bwd = cal_model.noise_rows(tree, noise)
    rows, cols = cal_model.tile_shape(tree)
    notes = [
        f"out_noise: σ² = a + b·N + c·N² gives each tile its σ; the RPUConfig holds the "
        f"characterized {rows} × {cols} tile's: forward {sigma_fwd:.5g} (N = {cols}), "
        f"backward {sigma_bwd:.5g} (N = {rows}).",
        "Read gain and input transfer are applied explicitly by the validation read; the "
        "RPUConfig carries them only where the model path's IOConfig has the fields.",
        "ADC off in both validation reads: the simulations have no ADC.",
    ]
    transfer = cal_model.input_transfer(tree, params)
    if transfer is None:
        notes.append(
            "The characterized tile reads with a linear device: its input transfer is the "
            "identity. The sinh cases' curve (input_transfer_c*, input_gain_time) describes "
            "the campaign's sinh device and is validated on those cases only."
        )
    fit_md = report.fit_report(
        char_path=str(char_path),
        held_out=held,
        params=table,
        validation=validation,
        preset=cfg.preset,
        notes=notes,
    )
    model = modelfile.ArrayModel(
        rpu=rpu,
        description=cal_model.describe(tree, params),
        source=f"calibrated from {char_path}",
        ir_drop=ir,
        out_noise=noise,
        forward_input_transfer=transfer,
        parameters=tuple(modelfile.parameter_from(p) for p in table),
        validation=validation.checks(),
        fit_report=fit_md,
        characterization=modelfile.CharacterizationLink(
            path=str(char_path),
            config_key=prov.config_key,
            sha256=modelfile.file_sha256(char_path),
        ),
    )
    origin = dataclasses.replace(cfg, held_out=held)
    path = modelfile.save_model(
        args.out, model, origin=origin, ngspice_version=prov.ngspice_version
    )
    plots = args.plots if args.plots is not None else path.parent / f"{path.stem}_plots"
    written = report.write_plots(validation, plots)

    print("validation (% of alpha for reads):")
    print(report.validation_table(validation))
    print()
    print(report.targets_table(validation))
    print()
    print(report.parameters_table(table))
    sha = modelfile.file_sha256(path)
    print(f"wrote {path} (sha256 {sha})", file=sys.stderr)
    print(f"wrote {', '.join(str(p) for p in written)}", file=sys.stderr)
    return 0
