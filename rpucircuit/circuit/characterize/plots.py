"""The campaign's plots: one PNG per analysis next to the HDF5 file (matplotlib, Agg)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rpucircuit.circuit import analytic as an
from rpucircuit.fileio import save_png


def _transfer_scatter(plt: Any, tree: Mapping[str, Any]) -> Any:
    """Simulated vs ideal outputs of every transfer case."""
    fig, ax = plt.subplots(figsize=(6, 5))
    for name, case in tree["transfer"].items():
        ax.plot(case["y_ideal_w"], case["y_sim_w"], ".", ms=4, label=name)
    lim = max(float(np.max(np.abs(c["y_ideal_w"]))) for c in tree["transfer"].values()) * 1.05
    ax.plot([-lim, lim], [-lim, lim], "k-", lw=0.6)
    ax.set_xlabel("ideal W·x (weight units)")
    ax.set_ylabel("ngspice output (weight units)")
    ax.set_title("Transfer: simulated vs ideal")
    ax.legend(fontsize=6)
    return fig


def _error_vs_position(plt: Any, tree: Mapping[str, Any]) -> Any:
    """IR-drop error along the output lines: transfer cases, nodal tiles, worst case."""
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    for name, case in tree["transfer"].items():
        if case["read_iv"] != "linear":
            continue
        ir = np.asarray(case["errors"]["ir_drop_w"]) / case["alpha_w"] * 100
        ax.plot(np.arange(ir.size), ir, ".-", ms=3, lw=0.6, label=name)
    for name, case in tree["nodal"].items():
        alpha = case["parameters"]["alpha_w"]
        err = (case["y_nodal_w"] - case["y_ideal_quantized_w"]) / alpha * 100
        ax.plot(np.arange(err.size), err, "-", lw=0.8, label=f"{name} random (nodal)")
        rel = (case["y_worst_nodal_w"] / case["y_worst_ideal_w"] - 1) * 100
        ax2.plot(np.arange(rel.size), rel, "-", lw=1.0, label=name)
    ax.set_xlabel("output line index (forward: row; drivers at row 0)")
    ax.set_ylabel("IR-drop error (% of full scale α)")
    ax.set_title("Error vs position: random weights and inputs")
    ax.legend(fontsize=6)
    ax2.set_xlabel("output line index")
    ax2.set_ylabel("relative error of the output (%)")
    ax2.set_title("Worst case: all G⁺ at G_on, G⁻ at G_off, x = 1")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _noise_spectrum(plt: Any, tree: Mapping[str, Any]) -> Any:
    """Output noise of one line and its referral to a current."""
    noise = tree["noise"]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(6, 7), sharex=True)
    ax1.loglog(noise["f_hz"], np.sqrt(noise["onoise_v2_per_hz"]))
    ax1.set_ylabel("integrator output noise (V/√Hz)")
    ax1.set_title(f"Noise of one output line ({noise['n_devices']} devices per array)")
    ax2.loglog(noise["f_hz"], np.sqrt(noise["s_i_a2_per_hz"]), label="ngspice, referred to input")
    kt = an.BOLTZMANN_J_PER_K * noise["parameters"]["temperature_k"]
    ax2.axhline(
        math.sqrt(4 * kt * noise["g_line_s"]), color="k", ls="--", lw=0.8, label="√(4kT·ΣG)"
    )
    ax2.set_xlabel("frequency (Hz)")
    ax2.set_ylabel("current noise (A/√Hz)")
    ax2.legend(fontsize=7)
    return fig


def _delay_vs_size(plt: Any, tree: Mapping[str, Any]) -> Any:
    """Far-end line delay vs line length against the formulas."""
    timing = tree["timing"]
    fig, ax = plt.subplots(figsize=(6, 5))
    n = timing["n_segments"]
    ax.loglog(n, timing["t50_sim_s"] * 1e12, "o", label="ngspice 50 % (bare line)")
    ax.loglog(n, timing["t50_loaded_sim_s"] * 1e12, "x", label="ngspice 50 % (with devices)")
    ax.loglog(n, timing["t50_distributed_s"] * 1e12, "-", label="0.377·RC + driver terms")
    ax.loglog(n, timing["elmore_s"] * 1e12, "--", label="Elmore")
    budget = timing["budget_fraction"] * timing["pulse_width_s"] * 1e12
    ax.axhline(budget, color="k", lw=0.8, label=f"{timing['budget_fraction']:g} × update pulse")
    ax.set_xlabel("cross points per line")
    ax.set_ylabel("far-end delay (ps)")
    ax.set_title("Line delay vs size")
    ax.legend(fontsize=7)
    return fig


def _update_dg_histogram(plt: Any, tree: Mapping[str, Any]) -> Any:
    """Δg per coincident and per half-selected pulse of each update case."""
    update = tree["update"]
    fig, axes = plt.subplots(1, len(update), figsize=(3 * len(update), 3.5), squeeze=False)
    for ax, (name, case) in zip(axes[0], update.items(), strict=True):
        nf, nh, dg = case["n_full"], case["n_half"], case["dg_s"]
        ref = abs(case["dg_model_s"])
        full = nf > 0
        per_full = (dg[full] - case["k"] * case["dg_min_s"] * nh[full]) / nf[full] / ref
        half = (nf == 0) & (nh > 0)
        per_half = dg[half] / nh[half] / ref
        bins = np.linspace(0.0, 1.2, 61)
        ax.hist(np.clip(np.abs(per_full), 0, 1.2), bins=bins, alpha=0.7, label="coincident")
        ax.hist(np.clip(np.abs(per_half), 0, 1.2), bins=bins, alpha=0.7, label="half-selected")
        ax.axvline(case["k_model"], color="k", ls=":", lw=0.8)
        ax.set_title(f"{name}\nk = {case['k']:.3f}", fontsize=8)
        ax.set_xlabel("|Δg| per pulse / model Δg")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def _opamp_noise_budget(plt: Any, tree: Mapping[str, Any]) -> Any:
    """Acceptable op-amp noise vs on/off ratio and t_meas."""
    budget_tree = tree["budget"]
    fig, ax = plt.subplots(figsize=(6, 5))
    for i, tm in enumerate(budget_tree["t_meas_s"]):
        (line,) = ax.semilogx(
            budget_tree["on_off_ratio"],
            budget_tree["e_n_max_v_per_rthz"][i] * 1e9,
            "o-",
            label=f"t_meas = {tm * 1e9:g} ns",
        )
        ax.semilogx(
            budget_tree["on_off_ratio"],
            budget_tree["e_n_max_devices_only_v_per_rthz"][i] * 1e9,
            "--",
            color=line.get_color(),
            lw=0.8,
        )
    ax.set_xticks(budget_tree["on_off_ratio"])
    ax.set_xticklabels([f"{r:g}" for r in budget_tree["on_off_ratio"]])
    ax.minorticks_off()
    ax.set_xlabel("on/off ratio")
    ax.set_ylabel("acceptable op-amp noise (nV/√Hz)")
    ax.set_title(
        f"σ = {budget_tree['sigma_target_w']:g}, {budget_tree['n_rows']} devices per line "
        "(dashed: devices + op-amp only)",
        fontsize=9,
    )
    ax.legend(fontsize=7)
    return fig


PLOTS: dict[str, Callable[[Any, Mapping[str, Any]], Any]] = {
    "transfer_scatter": _transfer_scatter,
    "error_vs_position": _error_vs_position,
    "noise_spectrum": _noise_spectrum,
    "delay_vs_size": _delay_vs_size,
    "update_dg_histogram": _update_dg_histogram,
    "opamp_noise_budget": _opamp_noise_budget,
}
"""File stem -> function drawing that figure from the campaign tree (given pyplot)."""


def write_plots(tree: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """One PNG per analysis next to the HDF5 file; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return [
        save_png(draw(plt, tree), out_dir / f"{stem}.png", dpi=110) for stem, draw in PLOTS.items()
    ]
