"""Netlist builders and renderer: structure, determinism, and refusal of unsafe values."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from rpucircuit.circuit import netlist as nl
from rpucircuit.config.tile import gokmen_vlasov_2016, replace_tile
from rpucircuit.errors import ConfigError, NetlistError, UnsupportedError


def _tile(rng: np.random.Generator, rows: int = 2, cols: int = 3) -> tuple[np.ndarray, np.ndarray]:
    d = gokmen_vlasov_2016().device
    return (
        rng.uniform(d.g_off_s, d.g_on_s, (rows, cols)),
        rng.uniform(d.g_off_s, d.g_on_s, (rows, cols)),
    )


def test_render_is_deterministic_and_complete(rng: np.random.Generator) -> None:
    cfg = gokmen_vlasov_2016(rows=2, cols=3)
    gp, gn = _tile(rng)
    x = np.array([0.5, -1.0, 0.0])
    a = nl.render(nl.build_read(cfg, gp, gn, x))
    b = nl.render(nl.build_read(cfg, gp.copy(), gn.copy(), x.copy()))
    assert a == b
    lines = a.splitlines()
    assert lines[-1] == ".end"
    assert lines.count(".control") == 1
    assert "quit" in lines
    # One R per cross point on every line: 2 arrays × (2·3 row + 3·2 column) segments.
    assert sum(1 for ln in lines if ln.startswith("rs_")) == 2 * (6 + 6)
    # One C per segment node, devices as resistors of exactly 1/g.
    assert sum(1 for ln in lines if ln.startswith("cg_")) == 2 * 12
    assert f"rd_p_1_2 pr1_c2 pc2_r1 {float(1.0 / gp[1, 2])!r}" in lines
    assert f"rd_m_0_0 mr0_c0 mc0_r0 {float(1.0 / gn[0, 0])!r}" in lines
    # Integrators at the far end of each row; the m array is driven with -x.
    assert any(ln.startswith("xint1 sum1 out1 rpu_integrator") for ln in lines)
    assert any(ln.startswith("xdrv_mc1 mc1_d rpu_pulse_driver v=1.0 ") for ln in lines)
    assert "write out.raw v(out0) v(out1)" in lines


def test_backward_is_transposed(rng: np.random.Generator) -> None:
    cfg = gokmen_vlasov_2016(rows=2, cols=3)
    gp, gn = _tile(rng)
    net = nl.build_read(cfg, gp, gn, np.array([0.2, -0.3]), direction="backward", analysis="op")
    text = nl.render(net)
    assert net.role("currents") == ("i(vsum0)", "i(vsum1)", "i(vsum2)")
    assert "xdrv_pr1 pr1_d rpu_dc_driver" in text
    assert "rs_pc2_r1 pc2_r1 sum2 0.144" in text  # column 2 ends past row 1 at sum2
    assert "rs_pr0_d" not in text
    assert "rs_pr0_c0 pr0_d pr0_c0 0.144" in text  # driver at the column-0 end
    with pytest.raises(KeyError, match="outputs"):
        net.role("outputs")


def test_zero_resistance_renders_as_short(rng: np.random.Generator) -> None:
    cfg = dataclasses.replace(
        gokmen_vlasov_2016(rows=2, cols=3),
        tile=dataclasses.replace(
            gokmen_vlasov_2016().tile,
            rows=2,
            cols=3,
            row_line=dataclasses.replace(gokmen_vlasov_2016().tile.row_line, r_ohm_per_um=0.0),
        ),
    )
    gp, gn = _tile(rng)
    text = nl.render(nl.build_read(cfg, gp, gn, np.zeros(3), analysis="op"))
    assert "vrs_pr0_c0 pr0_c0 pr0_c1 dc 0.0" in text


def test_time_and_amplitude_drivers(rng: np.random.Generator) -> None:
    cfg = gokmen_vlasov_2016(rows=2, cols=3)
    gp, gn = _tile(rng)
    x = np.array([0.5, -0.25, 0.0])
    t0, _ = nl.read_times(cfg)
    text = nl.render(nl.build_read(cfg, gp, gn, x))
    # Time encoding: ±V_read for |x_q|·t_meas (x_q = 63/126 and 32/126, quantized).
    assert f"v=1.0 td={t0 - 5e-11!r} tw={0.5 * 80e-9!r}" in text
    assert f"v=-1.0 td={t0 - 5e-11!r} tw={32 / 126 * 80e-9!r}" in text
    amp = dataclasses.replace(
        cfg, periphery=dataclasses.replace(cfg.periphery, encoding="amplitude")
    )
    text = nl.render(nl.build_read(amp, gp, gn, x))
    assert f"v={-32 / 126!r} td={t0 - 5e-11!r} tw=8e-08" in text


def test_sinh_devices_and_op_refusal(rng: np.random.Generator) -> None:
    cfg = gokmen_vlasov_2016(rows=2, cols=3)
    cfg = dataclasses.replace(cfg, device=dataclasses.replace(cfg.device, read_iv="sinh"))
    gp, gn = _tile(rng)
    text = nl.render(nl.build_read(cfg, gp, gn, np.array([0.5, 1.0, 0.0])))
    assert f"xd_p_0_0 pr0_c0 pc0_r0 rpu_read_sinh g={float(gp[0, 0])!r} v0=0.5" in text
    with pytest.raises(UnsupportedError, match="sinh read I-V is not equivalent"):
        nl.build_read(cfg, gp, gn, np.array([0.5, 1.0, 0.0]), analysis="op")
    # Full or zero pulses are fine at DC.
    nl.build_read(cfg, gp, gn, np.array([-1.0, 1.0, 0.0]), analysis="op")


def test_update_netlist(rng: np.random.Generator) -> None:
    cfg = gokmen_vlasov_2016(rows=2, cols=3)
    g0 = np.full((2, 3), cfg.device.g_mean_s)
    rb = np.zeros((2, 10), bool)
    rb[0, [0, 1, 5]] = True
    cb = np.zeros((3, 10), int)
    cb[2, 9] = 1
    net = nl.build_update(cfg, g0, rb, cb, polarity=-1)
    text = nl.render(net)
    assert net.role("states")[0] == "v(s0_0)"
    assert len(net.vectors) == 6
    assert "rpu_update_rect" in text
    # Row 0: bits 0-1 merge into one trapezoid and bit 5 is another, at -V_S/2 = -1 V.
    t, h = 1e-9, 2.5e-11
    expect = [0.0, 0.0, t - h, 0.0, t + h, -1.0, 3 * t - h, -1.0, 3 * t + h, 0.0]
    expect += [6 * t - h, 0.0, 6 * t + h, -1.0, 7 * t - h, -1.0, 7 * t + h, 0.0, 12 * t, 0.0]
    line = next(ln for ln in text.splitlines() if ln.startswith("vrow0 vr0 0 dc 0.0 pwl("))
    got = [float(v) for v in line[len("vrow0 vr0 0 dc 0.0 pwl(") : -1].split()]
    # Times are sums of a few doubles: equal to 1e-12 relative.
    assert np.allclose(got, expect, rtol=1e-12, atol=1e-24)
    for k, sub in ((0.5, "rpu_update_lin"), (0.8, "rpu_update_sat")):
        c = dataclasses.replace(cfg, device=dataclasses.replace(cfg.device, k=k))
        assert sub in nl.render(nl.build_update(c, g0, rb, cb))


def test_update_rate_factors_scale_each_device(rng: np.random.Generator) -> None:
    # rate_factor multiplies both rate scales of its device (exactly, as printed), says so
    # in the device's comment, and None renders the netlist without it byte for byte.
    cfg = gokmen_vlasov_2016(rows=2, cols=3)
    g0 = np.full((2, 3), cfg.device.g_mean_s)
    rb = rng.random((2, 10)) < 0.5
    cb = rng.random((3, 10)) < 0.5
    plain = nl.build_update(cfg, g0, rb, cb)
    assert nl.render(nl.build_update(cfg, g0, rb, cb, rate_factor=None)) == nl.render(plain)
    factor = np.array([[1.0, 0.5, 1.25], [0.0, 2.0, 0.75]])
    scaled = nl.build_update(cfg, g0, rb, cb, rate_factor=factor)
    devs = [e for e in scaled.elements if isinstance(e, nl.Instance)]
    base = [e for e in plain.elements if isinstance(e, nl.Instance)]
    for e, b, f in zip(devs, base, factor.ravel(), strict=True):
        for name in ("r0up", "r0dn"):
            assert dict(e.params)[name] == dict(b.params)[name] * f
        assert f"rate x {float(f)!r} (device spread)" in e.comment


def test_device_rate_factors_follow_the_configured_spread() -> None:
    # 1 + σ·ξ clipped at 0: with σ = 0.3 over 200,000 devices the mean is 1 and the std
    # 0.3 within 1 % (their standard errors are 0.07 % and 0.05 %); σ = 0 draws nothing.
    cfg = gokmen_vlasov_2016(rows=2, cols=3)
    assert cfg.device.dw_min_dtod == 0.3  # paper A's preset
    rng = np.random.default_rng(3)
    f = nl.device_rate_factors(cfg, (400, 500), rng=rng)
    assert f.shape == (400, 500)
    assert np.min(f) >= 0.0
    assert np.mean(f) == pytest.approx(1.0, abs=0.01)
    assert np.std(f) == pytest.approx(0.3, rel=0.01)
    none = dataclasses.replace(cfg, device=dataclasses.replace(cfg.device, dw_min_dtod=0.0))
    state = rng.bit_generator.state
    np.testing.assert_array_equal(nl.device_rate_factors(none, (2, 3), rng=rng), 1.0)
    assert rng.bit_generator.state == state
    with pytest.raises(ConfigError, match=r"dw_min_dtod = -0.1: must lie in \[0"):
        dataclasses.replace(cfg.device, dw_min_dtod=-0.1)


def test_noise_and_line_netlists(rng: np.random.Generator) -> None:
    cfg = gokmen_vlasov_2016(rows=2, cols=3)
    gp, gn = _tile(rng)
    text = nl.render(nl.build_noise(cfg, gp[0], gn[0]))
    assert "noise v(out0) vin0 dec 20 1000.0 10000000000.0" in text
    assert "vin0 vp0 0 dc 0.0 ac 1.0" in text
    assert "setplot noise2" in text
    # The Monte Carlo variant: e_n is the explicit source ven0 on the op-amp's
    # non-inverting input; the integrator has no noise resistor and carries vreset.
    src = nl.render(nl.build_noise(cfg, gp[0], gn[0], opamp_noise="source"))
    assert "ven0 pin0 0 dc 0.0" in src
    assert "xint0 sum0 out0 pin0 rpu_integrator_ext " in src
    assert "vreset=0.0" in src and "rnoise" not in src
    assert src == nl.render(nl.build_noise(cfg, gp[0], gn[0], opamp_noise="source"))
    line = nl.build_line(cfg, line="col", n=5, load_devices=False)
    text = nl.render(line)
    assert line.role("ends") == ("v(l0)", "v(l4)")
    assert "rd_l0" not in text
    assert sum(1 for ln in text.splitlines() if ln.startswith("rs_l")) == 5


@pytest.mark.parametrize(
    "bad",
    [
        "x\n.control\nshell rm -rf /\n.endc",
        "a;b",
        "Row1",
        "1abc",
        "a b",
        "",
        "a" * 65,
        "v(x)",
    ],
)
def test_hostile_names_rejected(bad: str) -> None:
    el = nl.Resistor("ok", bad, "0", 1.0)
    net = nl.Netlist("t", (), (el,), (nl.Op(),), ())
    with pytest.raises(NetlistError, match=r"ok node = .*must match \[a-z\]\[a-z0-9_\]\*"):
        nl.render(net)
    with pytest.raises(NetlistError, match="element name"):
        nl.render(nl.Netlist("t", (), (nl.Resistor(bad, "a", "0", 1.0),), (nl.Op(),), ()))


@pytest.mark.parametrize(
    ("element", "match"),
    [
        (nl.Resistor("r", "a", "0", math.nan), r"r resistance = nan: must be finite"),
        (nl.Resistor("r", "a", "0", math.inf), r"r resistance = inf: must be finite"),
        (nl.Resistor("r", "a", "0", -1.0), r"r resistance = -1.0: must be >= 0"),
        (nl.Resistor("r", "a", "0", "1k"), r"r resistance = '1k': must be a real number"),  # type: ignore[arg-type]
        (nl.Resistor("r", "a", "0", True), r"r resistance = True: must be a real number"),  # type: ignore[arg-type]
        (nl.Capacitor("c", "a", "0", 0.0), r"c capacitance = 0.0: must be > 0"),
        (nl.VSource("v", "a", "0", dc=math.nan), r"v dc = nan"),
        (nl.VSource("v", "a", "0", ac=math.inf), r"v ac = inf"),
        (nl.VSource("v", "a", "0", pwl=(0.0, 1.0, 0.0, 2.0)), r"pwl times must increase"),
        (nl.VSource("v", "a", "0", pwl=(0.0,)), r"pwl needs \(time, value\) pairs"),
        (nl.Instance("x", ("a",), "sub", (("p", math.nan),)), r"x\.p = nan"),
        (nl.Instance("x", ("a",), "sub", (("P;", 1.0),)), r"x parameter = 'P;'"),
        (nl.Instance("x", ("a",), "sub\n.control"), r"x subcircuit"),
        (nl.Resistor("r", "a", "0", 1.0, comment="ok\n.control"), r"comment of 'r'"),
    ],
)
def test_bad_element_values(element: nl.Resistor, match: str) -> None:
    with pytest.raises(NetlistError, match=match):
        nl.render(nl.Netlist("t", (), (element,), (nl.Op(),), ()))


@pytest.mark.parametrize(
    ("netlist", "match"),
    [
        (nl.Netlist("t\n.endc", (), (), (nl.Op(),), ()), r"title = .*printable ASCII"),
        (nl.Netlist("t", ("../x.lib",), (), (nl.Op(),), ()), r"library = '../x.lib'"),
        (nl.Netlist("t", (), (), (), ()), r"netlist has no analysis"),
        (nl.Netlist("t", (), (), (nl.Op(),), ("v(a) ; quit",)), r"vector = 'v\(a\) ; quit'"),
        (nl.Netlist("t", (), (), (nl.Op(),), (), options=(("reltol", math.nan),)), "reltol"),
        (nl.Netlist("t", (), (), (nl.Op(),), (), options=(("a=b", 1.0),)), r"option = 'a=b'"),
        (nl.Netlist("t", (), (), (nl.Tran(1e-9, 1e-10),), ()), r"need 0 < step <= stop"),
        (nl.Netlist("t", (), (), (nl.Noise("o", "s", 0, 1.0, 2.0),), ()), r"noise points = 0"),
        (nl.Netlist("t", (), (), (nl.Noise("o", "s", 2.0, 1.0, 2.0),), ()), r"noise points"),  # type: ignore[arg-type]
        (
            nl.Netlist("t", (), (), (nl.Noise("o", "s", 5, 2.0, 1.0),), ()),
            r"need 0 < f_start < f_stop",
        ),
        (nl.Netlist("t", (), (), (nl.Noise("o;", "s", 5, 1.0, 2.0),), ()), r"noise output"),
    ],
)
def test_bad_netlists(netlist: nl.Netlist, match: str) -> None:
    with pytest.raises(NetlistError, match=match):
        nl.render(netlist)


def test_builder_input_errors(rng: np.random.Generator) -> None:
    cfg = gokmen_vlasov_2016(rows=2, cols=3)
    gp, gn = _tile(rng)
    x = np.zeros(3)
    cases = [
        (lambda: nl.build_read(cfg, gp, gn, x, direction="up"), "direction = 'up'"),  # type: ignore[arg-type]
        (lambda: nl.build_read(cfg, gp, gn, x, analysis="ac"), "analysis = 'ac'"),  # type: ignore[arg-type]
        (lambda: nl.build_read(cfg, gp.T, gn, x), r"g_pos: shape \(3, 2\) must be \(2, 3\)"),
        (lambda: nl.build_read(cfg, gp, None, x), "g_neg = None"),
        (lambda: nl.build_read(cfg, gp * np.nan, gn, x), "g_pos: contains non-finite"),
        (lambda: nl.build_read(cfg, -gp, gn, x), "g_pos: conductances must be > 0"),
        (lambda: nl.build_read(cfg, "gp", gn, x), "g_pos: not a numeric array"),
        (lambda: nl.build_read(cfg, gp, gn, np.zeros(2)), r"x: shape \(2,\) must be \(3,\)"),
        (lambda: nl.build_read(cfg, gp, gn, [0, 2, 0]), r"x: inputs must lie in \[-1, 1\]"),
        (lambda: nl.build_read(cfg, gp, gn, [0, np.inf, 0]), "x: contains non-finite"),
        (lambda: nl.build_read(cfg, gp, gn, ["a", 0, 0]), "x: not a numeric array"),
        (
            lambda: nl.build_read(replace_tile(cfg, paired=False), gp, gn, x),
            r"g_neg given but tile\.paired = false",
        ),
        (
            lambda: nl.build_update(cfg, gp * 10, np.zeros((2, 10), bool), np.zeros((3, 10), bool)),
            r"g0: conductances must lie in \[g_off, g_on\]",
        ),
        (
            lambda: nl.build_update(cfg, gp, np.zeros((2, 9), bool), np.zeros((3, 10), bool)),
            r"row_bits: shape \(2, 9\) must be \(2, 10\)",
        ),
        (
            lambda: nl.build_update(cfg, gp, np.zeros((2, 10), bool), np.full((3, 10), 2)),
            "col_bits: must hold booleans",
        ),
        (
            lambda: nl.build_update(
                cfg, gp, np.zeros((2, 10), bool), np.zeros((3, 10), bool), polarity=2
            ),  # type: ignore[arg-type]
            "polarity = 2",
        ),
        (
            lambda: nl.build_update(
                cfg, gp, np.zeros((2, 10), bool), np.zeros((3, 10), bool), rate_factor=np.ones(3)
            ),
            r"rate_factor: shape \(3,\) must be \(2, 3\)",
        ),
        (
            lambda: nl.build_update(
                cfg, gp, np.zeros((2, 10), bool), np.zeros((3, 10), bool), rate_factor=-gp
            ),
            "rate_factor: factors must be finite and >= 0",
        ),
        (lambda: nl.build_noise(cfg, gp, gn), r"g_pos: shape \(2, 3\) must be \(n,\)"),
        (lambda: nl.build_noise(cfg, gp[0], None), "g_neg = None"),
        (lambda: nl.build_noise(cfg, "x", None), "g_pos: not a numeric array"),
        (lambda: nl.build_noise(cfg, gp[0], gn[0], line="diag"), "line = 'diag'"),  # type: ignore[arg-type]
        (
            lambda: nl.build_noise(cfg, gp[0], gn[0], opamp_noise="ideal"),  # type: ignore[arg-type]
            "opamp_noise = 'ideal'",
        ),
        (
            lambda: nl.build_noise(replace_tile(cfg, paired=False), gp[0], gn[0]),
            r"g_neg given but tile\.paired = false",
        ),
        (lambda: nl.build_line(cfg, n=0), "n = 0: must be an integer >= 1"),
        (lambda: nl.build_line(cfg, line="diag"), "line = 'diag'"),  # type: ignore[arg-type]
        (lambda: nl.build_line(cfg, points=3), "points = 3"),
        (lambda: nl.build_line(cfg, t_stop_s=-1.0), r"need 0 < rise < stop"),
        (
            lambda: nl.build_line(
                dataclasses.replace(
                    cfg,
                    tile=dataclasses.replace(
                        cfg.tile, row_line=dataclasses.replace(cfg.tile.row_line, c_f_per_um=0.0)
                    ),
                )
            ),
            "a delay needs line capacitance",
        ),
        (lambda: nl.build_cycle(cfg, "sideways", rng=rng), "cycle = 'sideways'"),  # type: ignore[arg-type]
    ]
    for build, match in cases:
        with pytest.raises(NetlistError, match=match):
            build()


def test_budget_refusal_names_the_estimate(rng: np.random.Generator) -> None:
    cfg = replace_tile(gokmen_vlasov_2016(rows=8, cols=8), rows=96, cols=96)
    g = np.full((96, 96), cfg.device.g_mean_s)
    with pytest.raises(NetlistError, match=r"too large to simulate \(tran\).*estimated ngspice"):
        nl.build_read(cfg, g, g, np.zeros(96))
    with pytest.raises(NetlistError, match=r"too large to simulate \(update\)"):
        nl.build_update(cfg, g, np.zeros((96, 10), bool), np.zeros((96, 10), bool))
    # check_budget=False builds it anyway (the caller takes responsibility).
    built = nl.build_read(cfg, g, g, np.zeros(96), analysis="op", check_budget=False)
    assert len(built.role("currents")) == 96
    bits = np.zeros((96, 10), bool)
    assert len(nl.build_update(cfg, g, bits, bits, check_budget=False).role("states")) == 96 * 96


def _kinds(netlist: nl.Netlist) -> dict[str, int]:
    """Counts of the element kinds that tell the cycles apart, from the records."""
    els = netlist.elements
    inst = [e for e in els if isinstance(e, nl.Instance)]
    return {
        "column drivers": sum(e.subckt == "rpu_pulse_driver" and e.name[5] == "c" for e in inst),
        "row drivers": sum(e.subckt == "rpu_pulse_driver" and e.name[5] == "r" for e in inst),
        "integrators": sum(e.subckt == "rpu_integrator" for e in inst),
        "update devices": sum(e.subckt.startswith("rpu_update_") for e in inst),
        "bit streams": sum(isinstance(e, nl.VSource) and e.name[:3] in ("row", "col") for e in els),
        "device resistors": sum(
            isinstance(e, nl.Resistor) and e.name.startswith("d_") for e in els
        ),
        "ac sources": sum(isinstance(e, nl.VSource) and e.ac is not None for e in els),
        "step sources": sum(isinstance(e, nl.VSource) and e.name == "step" for e in els),
    }


def test_build_cycle_builds_each_cycle(rng: np.random.Generator) -> None:
    rows, cols = 2, 3
    cfg = gokmen_vlasov_2016(rows=rows, cols=cols)
    expected = {
        "forward": (
            {"column drivers": 2 * cols, "integrators": rows, "device resistors": 12},
            nl.Tran,
            ("outputs", tuple(f"v(out{m})" for m in range(rows))),
        ),
        "backward": (
            {"row drivers": 2 * rows, "integrators": cols, "device resistors": 12},
            nl.Tran,
            ("outputs", tuple(f"v(out{m})" for m in range(cols))),
        ),
        "update": (
            {"bit streams": rows + cols, "update devices": rows * cols},
            nl.Tran,
            ("states", tuple(f"v(s{i}_{j})" for i in range(rows) for j in range(cols))),
        ),
        "noise": (
            {"integrators": 1, "device resistors": 2 * cols, "ac sources": 1},
            nl.Noise,
            ("spectrum", ("onoise_spectrum", "inoise_spectrum")),
        ),
        # one row line, a G_mean device to ground at each of its cols cross points
        "line": (
            {"step sources": 1, "device resistors": cols},
            nl.Tran,
            ("ends", ("v(l0)", f"v(l{cols - 1})")),
        ),
    }
    for cycle, (counts, analysis, (role, vectors)) in expected.items():
        built = nl.build_cycle(cfg, cycle, rng=rng)  # type: ignore[arg-type]
        kinds = _kinds(built)
        assert kinds == {k: counts.get(k, 0) for k in kinds}, cycle
        assert [type(a) for a in built.analyses] == [analysis], cycle
        assert built.role(role) == vectors, cycle
        assert nl.render(built).endswith(".end\n")
    assert [p.name for p in nl.libraries(nl.build_cycle(cfg, "forward", rng=rng))] == [
        "rpu_drivers.lib",
        "rpu_integrator.lib",
        "rpu_devices.lib",
    ]
    assert all(p.is_file() for p in nl.libraries(nl.build_cycle(cfg, "forward", rng=rng)))
    assert nl.build_cycle(cfg, "line", rng=rng).libs == ()


@pytest.mark.parametrize("cycle", ["forward", "backward", "update", "noise"])
def test_build_cycle_draws_from_rng(cycle: str) -> None:
    cfg = gokmen_vlasov_2016(rows=2, cols=3)

    def build(seed: int) -> nl.Netlist:
        return nl.build_cycle(cfg, cycle, rng=np.random.default_rng(seed))  # type: ignore[arg-type]

    def conductances(netlist: nl.Netlist) -> list[float]:
        out = []
        for e in netlist.elements:
            if isinstance(e, nl.Resistor) and e.name.startswith("d_"):
                out.append(1.0 / e.ohm)
            elif isinstance(e, nl.Instance) and e.subckt.startswith("rpu_update_"):
                out.append(dict(e.params)["g0"])
        return out

    assert build(1) == build(1)
    assert nl.render(build(1)) == nl.render(build(1))
    g1, g2 = conductances(build(1)), conductances(build(2))
    assert len(g1) == len(g2) > 0
    d = cfg.device
    # 1/(1/g) is g to one rounding; 1e-12 relative allows for it at the range ends.
    assert all(d.g_off_s * (1 - 1e-12) <= g <= d.g_on_s * (1 + 1e-12) for g in g1 + g2)
    assert not set(g1) & set(g2)  # continuous draws: two seeds share no value
