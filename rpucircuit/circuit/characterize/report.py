"""The campaign's Markdown report (``report.md`` next to the HDF5 file): one section per
analysis, each a function of the campaign tree."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rpucircuit import store
from rpucircuit.circuit.characterize.campaign import RESULT_NAME
from rpucircuit.fileio import atomic_write_text


def _ratio(r: float) -> str:
    return "not reachable" if math.isnan(r) else f"{r:.2f}"


def _noise_table(header: str, t_meas_s: Any, e_n_v_per_rthz: Any) -> list[str]:
    """Markdown rows of an acceptable-noise table (t_meas down, on/off across; nV/√Hz)."""
    n_cols = header.count("|") - 1
    rows = [header, "|" + "---|" * n_cols]
    for tm, row in zip(t_meas_s, e_n_v_per_rthz, strict=True):
        cells = " | ".join("—" if math.isnan(v) else f"{v * 1e9:.2f}" for v in row)
        rows.append(f"| {tm * 1e9:g} ns | {cells} |")
    return rows


def _transfer_section(tree: Mapping[str, Any]) -> list[str]:
    """Errors of every transfer case and the IR drop of the nodal tiles."""
    lines = [
        "## Transfer (outputs in weight units; errors in % of the bound α)",
        "",
        "| case | analysis | rms error | max error | gain | max IR drop | max saturation "
        "| max residual |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, c in tree["transfer"].items():
        e, alpha = c["errors"], c["alpha_w"]
        total = np.asarray(e["total_w"])
        lines.append(
            f"| {name} | {c['analysis']} | {np.sqrt(np.mean(total**2)) / alpha * 100:.3f} | "
            f"{np.max(np.abs(total)) / alpha * 100:.3f} | {e['gain']:.5f} | "
            f"{np.max(np.abs(e['ir_drop_w'])) / alpha * 100:.4f} | "
            f"{np.max(np.abs(e['saturation_w'])) / alpha * 100:.3f} | "
            f"{np.max(np.abs(e['residual_w'])) / alpha * 100:.4f} |"
        )
    lines += [
        "",
        "| nodal tile | solve time (s) | random: max IR drop (% of α) "
        "| worst case: max relative error (%) |",
        "|---|---|---|---|",
    ]
    for name, c in tree["nodal"].items():
        alpha = c["parameters"]["alpha_w"]
        rand = np.max(np.abs(c["y_nodal_w"] - c["y_ideal_quantized_w"])) / alpha * 100
        worst = np.max(np.abs(c["y_worst_nodal_w"] / c["y_worst_ideal_w"] - 1)) * 100
        lines.append(f"| {name} | {c['solve_s']:.2f} | {rand:.3f} | {worst:.3f} |")
    return lines


def _update_section(tree: Mapping[str, Any]) -> list[str]:
    """Extracted k, Δg_min and up/down ratio of every update case."""
    lines = [
        "",
        "## Update (one cycle, BL pulses, devices at G_mean)",
        "",
        "| case | model k | extracted k | Δg_min / model | mean half-selected Δg/(n·Δg_min) |",
        "|---|---|---|---|---|",
    ]
    updates = tree["update"]
    for name, c in updates.items():
        ratio = np.asarray(c["half_only_ratio"])
        mean_half = float(np.mean(ratio)) if ratio.size else float("nan")
        lines.append(
            f"| {name} | {c['k_model']:g} | {c['k']:.4f} | "
            f"{c['dg_min_s'] / c['dg_model_s']:.4f} | {mean_half:.4f} |"
        )
    lines += ["", "Up/down ratio (Δg_up/Δg_down per coincident pulse):", ""]
    for name, c in updates.items():
        if name.endswith("_up") and f"{name[:-3]}_down" in updates:
            down = updates[f"{name[:-3]}_down"]
            lines.append(
                f"- {name[:-3]}: {c['dg_min_s'] / -down['dg_min_s']:.4f} "
                f"(model {c['up_down_ratio_model']:g})"
            )
    return lines


def _spread_bound_section(tree: Mapping[str, Any]) -> list[str]:
    """The device-to-device spread and the bound cases (every line pulsing in every slot)."""
    lines = [
        "",
        "## Update spread and bounds (BL coincident pulses per device)",
        "",
        "| case | devices | model Δw_min spread | observed spread | mean Δg per pulse / model |",
        "|---|---|---|---|---|",
    ]
    for name, c in tree["update_dtod"].items():
        per = np.asarray(c["dg_per_pulse_s"])
        lines.append(
            f"| {name} | {per.size} | {c['dw_min_dtod_model']:.3g} | {c['spread_rel']:.4f} | "
            f"{float(np.mean(per)) / c['dg_model_s']:.4f} |"
        )
    lines += ["", "| case | start distance (pulses) | Δg per pulse / free rate |", "|---|---|---|"]
    for name, c in tree["update_bound"].items():
        dist = np.asarray(c["distance_pulses"]).ravel()
        rel = np.asarray(c["dg_per_pulse_s"]).ravel() / c["dg_model_s"]
        cells = ", ".join(f"{d:.3g}: {r:.3f}" for d, r in zip(dist, rel, strict=True))
        lines.append(f"| {name} | {dist.min():g} … {dist.max():g} | {cells} |")
    return lines


def _noise_section(tree: Mapping[str, Any]) -> list[str]:
    """`.noise`, kT/C and the Monte Carlo of one output line."""
    nz, ktc, mc = tree["noise"], tree["ktc"], tree["noise_mc"]
    b = nz["budget"]
    lines = [
        "",
        "## Noise (one output line, σ in weight units over t_meas)",
        "",
        "Read model everywhere (analytic budget, `.noise` reference, Monte Carlo): "
        "single-ended — reset C_int, integrate t_meas, read −C_int·v(out) once; kT/C counts "
        "once, the op-amp's broadband output noise once, plus its e_n frozen on the line "
        "capacitance when the reset opens.",
        "",
        f"- `.noise` for that read: σ = {nz['sigma_sim_w']:.5f}; analytic "
        f"device + op-amp: {math.hypot(b['device_thermal_w'], b['opamp_w']):.5f} "
        f"(device {b['device_thermal_w']:.5f}, op-amp {b['opamp_w']:.5f}). A start-to-end "
        f"read (the plain window of the spectrum, op-amp broadband noise at both ends) "
        f"would give {nz['sigma_window_w']:.5f}.",
        f"- Device thermal noise alone: `.noise` {nz['sigma_sim_no_opamp_w']:.5f} vs "
        f"analytic {b['device_thermal_w']:.5f}. Both are referred through the line's "
        f"measured charge gain {nz['signal_gain']:.4f} (finite A0 and the GBW-limited "
        "virtual ground take the rest of every current, signal and noise alike).",
        f"- kT/C of the reset: ngspice {ktc['v2_sim']:.4g} V², analytic kT/C "
        f"{ktc['v2_analytic']:.4g} V² (ratio {ktc['v2_sim'] / ktc['v2_analytic']:.4f}); "
        f"σ_kTC = {b['ktc_w']:.5f}. ADC quantization σ = {b['adc_w']:.5f}.",
        f"- Transient-noise Monte Carlo ({mc['trials']} trials, seed {mc['seed']}, "
        f"{mc['n_devices']} devices per array; sources {mc['sources'].replace(',', ' + ')}; "
        f"seeded PWL noise, kT/C as a sampled reset voltage, single-ended read): "
        f"σ = {mc['sigma_mc_w']:.5f} ± {mc['sigma_mc_stderr_w']:.5f} vs `.noise` of the "
        f"line and the reset switch {mc['sigma_noise_w']:.5f} (device "
        f"{mc['sigma_device_w']:.5f}, op-amp {mc['sigma_opamp_w']:.5f}, kT/C "
        f"{mc['sigma_ktc_w']:.5f}; z = "
        f"{(mc['sigma_mc_w'] - mc['sigma_noise_w']) / mc['sigma_mc_stderr_w']:+.2f}).",
        "",
        "`.noise` of lines of several lengths (σ² against N):",
        "",
        "| devices per array N | σ | σ² | σ without op-amp | analytic device + op-amp |",
        "|---|---|---|---|---|",
    ]
    for c in sorted(tree["noise_lines"].values(), key=lambda c: int(c["n_devices"])):
        bn = c["budget"]
        lines.append(
            f"| {int(c['n_devices'])} | {c['sigma_sim_w']:.5f} | {c['sigma_sim_w'] ** 2:.4g} | "
            f"{c['sigma_sim_no_opamp_w']:.5f} | "
            f"{math.hypot(bn['device_thermal_w'], bn['opamp_w']):.5f} |"
        )
    return lines


def _budget_section(tree: Mapping[str, Any]) -> list[str]:
    """The acceptable op-amp noise tables and what limits them."""
    bt = tree["budget"]
    ratios = list(bt["on_off_ratio"])
    header = "| t_meas \\ on/off | " + " | ".join(f"{r:g}" for r in ratios) + " |"
    lines = [
        "",
        f"## Acceptable op-amp noise (nV/√Hz) for σ = {bt['sigma_target_w']:g}, "
        f"{bt['n_rows']} devices per line",
        "",
        *_noise_table(header, bt["t_meas_s"], bt["e_n_max_v_per_rthz"]),
        "",
        "Counting only the devices' thermal noise and the op-amp (paper A's split, no kT/C, "
        "no ADC):",
        "",
        *_noise_table(header, bt["t_meas_s"], bt["e_n_max_devices_only_v_per_rthz"]),
    ]
    lines += [
        "",
        f"On a {bt['n_rows']}-device line (ΣG = {bt['g_line_s'] * 1e6:.0f} µS) only "
        f"{bt['signal_gain'] * 100:.1f} % of each line current reaches C_int: the op-amp's "
        f"GBW-limited virtual ground (1/(2π·GBW·C_int)) competes with the line; keeping the "
        f"loss under 1 % needs GBW ≥ {bt['gbw_for_1pct_loss_hz'] / 1e9:.0f} GHz at this "
        "C_int. The devices' noise and the op-amp's e_n·G lose alike with the signal; kT/C, "
        "the op-amp's broadband and reset parts and the ADC act at the output and grow by "
        "1/gain in weight units; the tables count them so.",
    ]
    lines += ["", "Smallest on/off ratio that meets σ (all sources counted):", ""]
    for i, tm in enumerate(bt["t_meas_s"]):
        lines.append(
            f"- t_meas = {tm * 1e9:g} ns: {_ratio(bt['min_on_off_ratio'][i])} with a "
            f"noiseless op-amp, {_ratio(bt['min_on_off_ratio_config_e_n'][i])} with the "
            f"config's {bt['config_e_n_v_per_rthz'] * 1e9:g} nV/√Hz"
        )
    lines += [
        "",
        "(— : device noise, kT/C and the ADC alone exceed σ.) IR-drop budget "
        f"N·R_line/R_dev = 0.1 gives R_dev = {bt['r_mean_ir_budget_ohm'] / 1e6:.2f} MΩ.",
    ]
    return lines


def _timing_section(tree: Mapping[str, Any]) -> list[str]:
    """Line delay vs size and the integrator's settling."""
    tm = tree["timing"]
    lines = [
        "",
        "## Timing",
        "",
        "| segments | ngspice 50 % (ps) | 0.377·RC + driver (ps) | Elmore (ps) "
        "| with devices (ps) |",
        "|---|---|---|---|---|",
    ]
    for k, n in enumerate(tm["n_segments"]):
        lines.append(
            f"| {n} | {tm['t50_sim_s'][k] * 1e12:.2f} | {tm['t50_distributed_s'][k] * 1e12:.2f} | "
            f"{tm['elmore_s'][k] * 1e12:.2f} | {tm['t50_loaded_sim_s'][k] * 1e12:.2f} |"
        )
    lines += [
        "",
        f"Largest line within {tm['budget_fraction']:g} × {tm['pulse_width_s'] * 1e9:g} ns: "
        f"{tm['n_max_sim']} cross points from ngspice (50 % delay), {tm['n_max_distributed']} "
        f"from the distributed formula, {tm['n_max_elmore']} from the Elmore delay (paper A's "
        "rule: 4096). Integrator closed-loop time constant "
        f"{tm['settle_tau_s'] * 1e12:.0f} ps; after the input pulses end the output settles "
        f"to {tm['settle_tol']:g} of its value in {tm['settle_sim_s'] * 1e12:.0f} ps "
        f"(ngspice) vs τ·ln(lag/tol) = {tm['settle_analytic_s'] * 1e12:.0f} ps.",
    ]
    return lines


SECTIONS = (
    _transfer_section,
    _update_section,
    _spread_bound_section,
    _noise_section,
    _budget_section,
    _timing_section,
)
"""The report's sections, in order."""


def write_report(
    tree: Mapping[str, Any],
    out_dir: Path,
    *,
    prov: store.Provenance,
    wall_s: float,
    cached: int,
    plots: list[Path],
) -> Path:
    """A short Markdown summary of the campaign next to the HDF5 file."""
    lines = [
        "# Circuit characterization",
        "",
        f"Config key `{prov.config_key[:16]}`, {prov.ngspice_version}, "
        f"rpucircuit {prov.package_version}. Wall time {wall_s:.1f} s "
        f"({cached} job(s) from the cache). Data: `{RESULT_NAME}` "
        "(schema: docs/characterization-schema.md).",
        "",
    ]
    for section in SECTIONS:
        lines += section(tree)
    lines += ["", "## Plots", ""]
    lines += [f"- [{p.name}]({p.name})" for p in plots]
    return atomic_write_text(out_dir / "report.md", "\n".join(lines) + "\n")
