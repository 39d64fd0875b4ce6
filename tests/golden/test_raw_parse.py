"""ngspice raw files (committed, written by ngspice 39 from data/rc_circuit.cir) parsed by
the pure parser, checked against the RC low-pass's closed forms and against each other."""

from __future__ import annotations

import numpy as np
import pytest
from regenerate import DATA

from rpucircuit.circuit.spice import parse_raw
from rpucircuit.errors import SimulationError

R, C = 1e3, 1e-12
TAU = R * C
K_B = 1.380649e-23
T_K = 300.15  # ngspice's default 27 °C


@pytest.fixture(params=["binary", "ascii"])
def raw(request: pytest.FixtureRequest) -> bytes:
    return (DATA / f"rc_{request.param}.raw").read_bytes()


def test_plots_in_order(raw: bytes) -> None:
    res = parse_raw(raw)
    names = [p.plotname for p in res.plots]
    assert names == [
        "Operating Point",
        "Noise Spectral Density Curves",
        "Integrated Noise",
        "Transient Analysis",
        "AC Analysis",
    ]
    assert res.plot("operating").names == ("v(in)", "v(out)", "i(v1)")
    assert res.plot("transient").units == ("time", "voltage", "current")
    with pytest.raises(KeyError, match="no plot 'dc'"):
        res.plot("dc")
    with pytest.raises(KeyError, match="no vector 'v\\(nope\\)' in any plot"):
        res.vector("v(nope)")
    with pytest.raises(KeyError, match="no vector 'v\\(nope\\)' in plot"):
        res.plots[0]["v(nope)"]


def test_values_match_closed_forms(raw: bytes) -> None:
    res = parse_raw(raw)
    assert res.plot("operating")["v(out)"][0] == 0.0  # source at 0 V at t = 0
    # Noise: R's thermal noise through the low-pass, sqrt(4kTR)/|1 + jωRC|. ngspice's
    # Boltzmann constant and temperature may differ in the 5th digit: 1e-4 relative.
    sp = res.plot("noise spectral")
    f = sp["frequency"].real
    expect = np.sqrt(4 * K_B * T_K * R) / np.abs(1 + 2j * np.pi * f * TAU)
    assert np.allclose(sp["onoise_spectrum"], expect, rtol=1e-4, atol=0)
    # Integrated over 1 kHz-1 THz: kT/C minus the tail above 1 THz (negligible, < 0.1 %)
    # and ngspice's piecewise integration on 10 points/decade: 2 % tolerance.
    total = res.vector("v(onoise_total)")[0]
    assert total == pytest.approx(np.sqrt(K_B * T_K / C), rel=0.02)
    # Transient: step at 1 ns (1 ps edge) into the RC: 1 - exp(-(t - t0)/tau). ngspice's
    # first steps after the sharp edge leave an error of 0.7 % that then decays with the
    # circuit's own tau (measured); the 20 ps trapezoidal steps add < 1e-4. Bound:
    # 1e-2·exp(-(t - t0)/tau) + 1e-4.
    tr = res.plot("transient")
    t, v = tr["time"].real, tr["v(out)"].real
    t0 = 1e-9 + 0.5e-12
    ref = np.where(t > t0, 1 - np.exp(-np.clip(t - t0, 0, None) / TAU), 0.0)
    bound = 1e-2 * np.exp(-np.clip(t - t0, 0, None) / TAU) + 1e-4
    assert np.all(np.abs(v - ref) <= bound)
    # AC (complex plot): 1/(1 + jωRC) exactly for a linear circuit (rounding only).
    ac = res.plot("ac")
    fa = ac["frequency"].real
    assert ac["v(out)"].dtype == np.complex128
    assert np.allclose(ac["v(out)"], 1 / (1 + 2j * np.pi * fa * TAU), rtol=1e-9, atol=0)


def test_binary_and_ascii_agree() -> None:
    b = parse_raw((DATA / "rc_binary.raw").read_bytes())
    a = parse_raw((DATA / "rc_ascii.raw").read_bytes())
    for pb, pa in zip(b.plots, a.plots, strict=True):
        assert pb.names == pa.names
        for name in pb.names:
            # ascii carries 16 significant digits: 1e-14 relative.
            assert np.allclose(pb[name], pa[name], rtol=1e-14, atol=1e-300)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "raw file: no plots"),
        (b"Title: x\nPlotname: p\n", "truncated header"),
        (b"Title: x\nNo. Points: 1\nVariables:\nBinary:\n", "missing 'No. Variables'"),
        (b"Title: x\nNo. Variables: 1\nVariables:\n\t0\ttime\ttime\nBinary:\n", "No. Points"),
        (
            b"No. Variables: 2\nNo. Points: 1\nVariables:\n\t0\ttime\ttime\nBinary:\n",
            "expected 2 variables, got 1",
        ),
        (b"No. Variables: 1\nNo. Points: 1\nVariables:\n\t0\ttime\nBinary:\n", "bad variable"),
        (
            b"No. Variables: 1\nNo. Points: 2\nVariables:\n\t0\ttime\ttime\nBinary:\n" + b"\0" * 8,
            r"binary data truncated \(8 of 16 bytes\)",
        ),
        (
            b"No. Variables: 1\nNo. Points: 2\nVariables:\n\t0\ttime\ttime\nValues:\n 0\t1.0\n",
            "ascii values truncated",
        ),
        (
            b"No. Variables: 1\nNo. Points: 1\nVariables:\n\t0\ttime\ttime\nValues:\n 0\tabc\n",
            "bad ascii value",
        ),
    ],
)
def test_malformed_raw(data: bytes, match: str) -> None:
    with pytest.raises(SimulationError, match=match):
        parse_raw(data)


def test_truncated_real_file(raw: bytes) -> None:
    with pytest.raises(SimulationError, match="truncated"):
        parse_raw(raw[: len(raw) // 2])
