"""``rpucircuit verify``'s input: the design file, the library scan (pins, parameters,
refused commands), the netlist adaptation and the report rows. No simulator here; the
checks themselves run in tests/sim/test_verify_sim.py."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from rpucircuit import cli
from rpucircuit.circuit import netlist as nl
from rpucircuit.circuit.extract import windowed_charge_variance_c2
from rpucircuit.config.tile import gokmen_vlasov_2016
from rpucircuit.design import verify_checks as vc
from rpucircuit.design.verify import CheckRow, prepare, report_table
from rpucircuit.design.verify_input import (
    MAX_LIBRARY_BYTES,
    ROLE_BY_NAME,
    DesignError,
    VerifySpec,
    check_role,
    load_design,
    scan_library,
)
from rpucircuit.errors import ConfigError, RpuError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "verify" / "paper-a"


@pytest.fixture
def design_dir(tmp_path: Path) -> Path:
    """A copy of the paper-A example design, free to edit."""
    dst = tmp_path / "design"
    shutil.copytree(EXAMPLE, dst)
    return dst


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


# --------------------------------------------------------------------------- library scan


def test_scan_reads_ports_and_parameters_across_continuation_lines() -> None:
    text = (
        "* a comment\n"
        ".SUBCKT my_int inn out\n"
        "+ a0=1e4 gbw = 1e9 ; trailing comment\n"
        "+ params: cint=1e-13\n"
        "r1 inn out 1k\n"
        ".ends\n"
    )
    lib = scan_library(Path("x.lib"), text)
    sub = lib.subckts["my_int"]
    assert sub.ports == ("inn", "out")
    assert sub.params == ("a0", "gbw", "cint")
    assert sub.line == 2


@pytest.mark.parametrize(
    ("line", "match"),
    [
        (".control", r"x\.lib:3: refused \.control: a \.control block runs ngspice commands"),
        (".endc", r"x\.lib:3: refused \.endc"),
        ("shell rm -rf /", r"x\.lib:3: refused 'shell': 'shell' runs an operating-system"),
        (".include /etc/passwd", r"x\.lib:3: refused \.include: a library may not include"),
        (".lib other.lib tt", r"x\.lib:3: refused \.lib"),
        (".tran 1n 10n", r"x\.lib:3: refused \.tran: a library may hold only"),
        ("pre_osdi foo.osdi", r"x\.lib:3: refused 'pre_osdi': OSDI loads a compiled"),
    ],
)
def test_scan_refuses_commands_with_file_and_line(line: str, match: str) -> None:
    text = ".subckt s a b\nr1 a b 1k\n" + line + "\n.ends\n"
    with pytest.raises(DesignError, match=match):
        scan_library(Path("x.lib"), text)


def test_scan_refuses_a_command_hidden_on_a_continuation_line() -> None:
    text = ".subckt s a b\nr1 a b\n+ 1k shell\n.ends\n"
    with pytest.raises(DesignError, match=r"x\.lib:3: refused 'shell'"):  # its own line
        scan_library(Path("x.lib"), text)


def test_scan_ignores_commands_in_comment_lines() -> None:
    text = "* .control and shell are only words here\n.subckt s a b\nr1 a b 1k $ 1 k\n.ends\n"
    assert set(scan_library(Path("x.lib"), text).subckts) == {"s"}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        # ngspice runs '*#' lines as commands, anywhere, indented or inside a subcircuit
        (".subckt s a b\nr1 a b 1k\n.ends\n*#shell touch pwned\n", r"x\.lib:4: refused a '\*#'"),
        (".subckt s a b\n  *# echo hi\nr1 a b 1k\n.ends\n", r"x\.lib:2: refused a '\*#'"),
        # a ';' or '$' tail is no hiding place for a forbidden word
        (".subckt s a b\nr1 a b 1k $ shell\n.ends\n", r"x\.lib:2: refused 'shell'"),
        (
            ".subckt s a b\nr1 a b 1k ; pre_codemodel x\n.ends\n",
            r"x\.lib:2: refused 'pre_codemodel'",
        ),
        # XSPICE code models read files (filesource, table2d, d_source, ...)
        (
            '.subckt s a b\nA1 %v([a]) src\n.model src filesource (file="/etc/passwd")\n.ends\n',
            r"x\.lib:2: refused XSPICE instance 'A1'",
        ),
        # a continuation with nothing before it (was an IndexError traceback)
        ("+\n.subckt s a b\n.ends\n", r"x\.lib:1: a continuation line"),
    ],
)
def test_scan_refuses_what_ngspice_would_execute_or_read(text: str, match: str) -> None:
    with pytest.raises(DesignError, match=match):
        scan_library(Path("x.lib"), text)


def test_scan_refuses_a_subcircuit_defined_twice() -> None:
    text = ".subckt s a b\n.ends\n.subckt s a b\n.ends\n"
    with pytest.raises(DesignError, match=r"x\.lib:3: subcircuit 's' defined twice"):
        scan_library(Path("x.lib"), text)


def test_check_role_names_wrong_ports_and_missing_parameters() -> None:
    lib = scan_library(Path("d.lib"), ".subckt drv out in v=1 td=0 tw=1n tr=1p\n.ends\n")
    with pytest.raises(DesignError, match=r"d\.lib:1: subcircuit 'drv' has ports \(out in\)"):
        check_role(lib, ROLE_BY_NAME["driver"], "drv")
    lib = scan_library(Path("d.lib"), ".subckt drv out v=1 td=0\n.ends\n")
    with pytest.raises(DesignError, match=r"lacks the parameter\(s\) tw, tr"):
        check_role(lib, ROLE_BY_NAME["driver"], "drv")
    with pytest.raises(DesignError, match=r"d\.lib: no subcircuit 'nope' for the driver"):
        check_role(lib, ROLE_BY_NAME["driver"], "nope")


def test_shipped_libraries_pass_their_own_scan() -> None:
    for name in ("rpu_integrator.lib", "rpu_drivers.lib", "rpu_devices.lib"):
        path = nl.NETLIST_DIR / name
        scan_library(path, path.read_text())


# --------------------------------------------------------------------------- design file


def test_example_design_loads(design_dir: Path) -> None:
    d = load_design(design_dir / "design.toml")
    assert d.circuit.tile.rows == 4096
    assert {c.role for c in d.roles} == {"integrator", "driver", "update"}
    assert d.spec.output_noise_sigma_w == 0.06


def test_wrong_pins_in_a_user_library_name_the_file(design_dir: Path) -> None:
    _replace(
        design_dir / "rpu_integrator.lib",
        ".subckt rpu_integrator inn out",
        ".subckt rpu_integrator out inn",
    )
    with pytest.raises(
        DesignError,
        match=r"rpu_integrator\.lib:\d+: subcircuit 'rpu_integrator' has ports \(out inn\); "
        r"the integrator must have exactly \(inn out\)",
    ):
        load_design(design_dir / "design.toml")


def test_control_block_in_a_user_library_is_refused(design_dir: Path) -> None:
    with (design_dir / "rpu_drivers.lib").open("a") as f:
        f.write(".control\nshell touch /tmp/owned\n.endc\n")
    with pytest.raises(DesignError, match=r"rpu_drivers\.lib:\d+: refused \.control"):
        load_design(design_dir / "design.toml")


def test_shell_in_a_user_library_is_refused(design_dir: Path) -> None:
    with (design_dir / "rpu_devices.lib").open("a") as f:
        f.write("shell touch /tmp/owned\n")
    with pytest.raises(DesignError, match=r"rpu_devices\.lib:\d+: refused 'shell'"):
        load_design(design_dir / "design.toml")


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        ('file = "rpu_drivers.lib"', 'file = "missing.lib"', r"cannot read library .*missing\.lib"),
        ('subckt = "rpu_pulse_driver"', 'subckt = "nope"', r"no subcircuit 'nope' for the driver"),
        ("[spec]", "[spec]\nbogus = 1", r"unknown \[spec\] field 'bogus'"),
        ("output_max_w = 10.0", "output_max_w = -1.0", r"spec\.output_max_w = -1\.0"),
        ('circuit = "tile.toml"', 'circuit = "none.toml"', r"circuit file 'none\.toml' not found"),
        ("[libraries.driver]", "[libraries.drivr]", r"unknown table \[libraries\.drivr\]"),
        ('circuit = "tile.toml"', "circuit = 3", r"circuit must be a file name or a table"),
        ('circuit = "tile.toml"', "", r"no circuit: give circuit = "),
        (
            'update = "rpu_update_rect"',
            'updat = "x"',
            r"\[libraries\.device\]: unknown key 'updat'",
        ),
        ('subckt = "rpu_integrator"', 'subckt = "Bad-Name"', r"subckt = 'bad-name': must match"),
        ("[spec]", "[spec]\n[extra]", r"unknown key or table 'extra'"),
        ("[spec]", "[spec]\nspice_size = 99\n[x]", r"unknown key or table 'x'"),
    ],
)
def test_bad_design_files_are_refused(design_dir: Path, old: str, new: str, match: str) -> None:
    _replace(design_dir / "design.toml", old, new)
    with pytest.raises(DesignError, match=match):
        load_design(design_dir / "design.toml")


def test_non_ascii_library_is_refused(design_dir: Path) -> None:
    (design_dir / "rpu_drivers.lib").write_bytes(b".subckt x out\n\xff\n.ends\n")
    with pytest.raises(DesignError, match=r"rpu_drivers\.lib: not plain ASCII text"):
        load_design(design_dir / "design.toml")


def test_the_same_subcircuit_in_two_files_is_refused(design_dir: Path) -> None:
    with (design_dir / "rpu_drivers.lib").open("a") as f:
        f.write(".subckt rpu_integrator inn out\n.ends\n")
    with pytest.raises(DesignError, match=r"subcircuit 'rpu_integrator' is also defined in"):
        load_design(design_dir / "design.toml")


def test_spec_validates_its_fields() -> None:
    with pytest.raises(ConfigError, match=r"spec\.saturation_margin = 1\.5"):
        VerifySpec(saturation_margin=1.5)
    with pytest.raises(ConfigError, match=r"spec\.spice_size = 0"):
        VerifySpec(spice_size=0)


def test_cli_exits_2_on_bad_input_before_simulating(
    design_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with (design_dir / "rpu_integrator.lib").open("a") as f:
        f.write(".control\n.endc\n")
    out = tmp_path / "out"
    assert cli.main(["verify", str(design_dir / "design.toml"), "--out", str(out)]) == 2
    assert "rpu_integrator.lib" in capsys.readouterr().err
    assert not out.exists()  # nothing copied, nothing simulated


# --------------------------------------------------------------------------- netlist and rows


def test_adapt_swaps_subcircuits_and_passes_only_declared_parameters() -> None:
    cfg = gokmen_vlasov_2016(rows=2, cols=2)
    g = [[1e-7, 1e-7], [1e-7, 1e-7]]
    net = nl.build_read(cfg, g, g, [0.5, -0.5])
    job = vc.VerifyJob(
        check="read",
        circuit=cfg,
        spec=VerifySpec(),
        parts=(
            vc.UserPart(
                role="integrator", subckt="my_int", lib="user_integrator.lib", params=("cint",)
            ),
            vc.UserPart(role="read", subckt="my_dev", lib="user_device.lib", params=("g",)),
        ),
        user_libs=("user_integrator.lib", "user_device.lib"),
        lib_dir="/nowhere",
        libs_digest="",
    )
    out = vc.adapt(net, job, user_devices=True)
    ints = [e for e in out.elements if isinstance(e, nl.Instance) and e.subckt == "my_int"]
    assert len(ints) == 2 and all(dict(e.params).keys() == {"cint"} for e in ints)
    devs = [e for e in out.elements if isinstance(e, nl.Instance) and e.subckt == "my_dev"]
    assert len(devs) == 8  # 2 x 2 devices on each of the two arrays
    assert dict(devs[0].params)["g"] == pytest.approx(1e-7, rel=1e-12)  # 1/R round trip
    assert not any(isinstance(e, nl.Resistor) and e.name.startswith("d_") for e in out.elements)
    # the driver stays shipped: its library is included after the designer's
    assert out.libs == ("user_integrator.lib", "user_device.lib", "rpu_drivers.lib")


def test_check_rows_margin_and_verdict() -> None:
    upper = CheckRow("a", "x", 0.5, 2.0, "%", True, "m")
    assert upper.margin == pytest.approx(0.75) and upper.passed
    lower = CheckRow("b", "x", 0.05, 0.1, "", False, "m")
    assert lower.margin == pytest.approx(-0.5) and not lower.passed
    table = report_table([upper, lower])
    assert "| +75.0 % | PASS |" in table and "| -50.0 % | FAIL |" in table


def test_single_read_counts_the_broadband_tail_once() -> None:
    """A white current PSD S: the window gives S·T/2 (its integral of sinc²); the tail
    above 20/T, whose window average is 1/(2π²f²), is counted at half weight:
    S·(1/f_split − 1/f_max)/(4π²) less. Numeric integration on ngspice-like log grids: 1 %."""
    t_meas, s_white = 80e-9, 1e-24
    f = np.geomspace(1e3, 1e11, 161)
    s = np.full_like(f, s_white)
    f_split = 20.0 / t_meas
    tail_half = s_white * (1.0 / f_split - 1.0 / f[-1]) / (4.0 * math.pi**2)
    expected = s_white * t_meas / 2.0 - tail_half
    assert vc.single_read_variance_c2(f, s, t_meas) == pytest.approx(expected, rel=0.01)
    # a spectrum that ends below f_split has no tail to halve
    low = f <= f_split
    assert vc.single_read_variance_c2(f[low], s[low], t_meas) == pytest.approx(
        windowed_charge_variance_c2(f[low], s[low], t_meas), rel=1e-12
    )


def test_a_read_tile_over_the_spice_budget_is_refused(design_dir: Path) -> None:
    _replace(design_dir / "tile.toml", "cols = 4096", "cols = 4096\nspice_limit_s = 0.01")
    with pytest.raises(DesignError, match=r"design\.toml: spec\.spice_size = 16: .*spice_limit_s"):
        load_design(design_dir / "design.toml")


def test_libraries_table_needs_integrator_and_driver(design_dir: Path) -> None:
    text = (design_dir / "design.toml").read_text()
    (design_dir / "design.toml").write_text(
        re.sub(r"\[libraries\.driver\].*?\n\n", "", text, flags=re.S)
    )
    with pytest.raises(DesignError, match=r"\[libraries\.driver\] is missing"):
        load_design(design_dir / "design.toml")
    (design_dir / "design.toml").write_text('circuit = "tile.toml"\n')
    with pytest.raises(DesignError, match=r"no \[libraries\] table"):
        load_design(design_dir / "design.toml")


def test_a_user_subcircuit_named_like_a_shipped_one_still_in_use_is_refused(
    design_dir: Path, tmp_path: Path
) -> None:
    """Without a device role the shipped rpu_devices.lib is included; a user subcircuit
    of one of its names would leave ngspice two definitions."""
    text = (design_dir / "design.toml").read_text()
    (design_dir / "design.toml").write_text(
        re.sub(r"\[libraries\.device\].*?\n\n", "", text, flags=re.S)
    )
    with (design_dir / "rpu_drivers.lib").open("a") as f:
        f.write(".subckt rpu_update_rect row col s g0=1e-7\nr1 row col 1meg\n.ends\n")
    design = load_design(design_dir / "design.toml")
    with pytest.raises(
        DesignError,
        match=r"rpu_drivers\.lib: subcircuit 'rpu_update_rect' has the name of a shipped one "
        r"in rpu_devices\.lib",
    ):
        prepare(design, tmp_path / "out")


def test_run_job_refuses_an_unknown_check() -> None:
    job = vc.VerifyJob(
        check="bogus",
        circuit=gokmen_vlasov_2016(),
        spec=VerifySpec(),
        parts=(),
        user_libs=(),
        lib_dir="",
        libs_digest="",
    )
    with pytest.raises(RpuError, match=r"check = 'bogus': must be one of"):
        vc.run_job(job, workdir="unused")


# --------------------------------------------------------------------------- hostile input


def _cli_err(capsys: pytest.CaptureFixture[str], design: Path, out: Path, code: int = 2) -> str:
    assert cli.main(["verify", str(design), "--out", str(out), "--no-progress"]) == code
    printed = capsys.readouterr()
    assert printed.out == ""
    assert printed.err.startswith("rpucircuit verify: error: ")
    assert printed.err.count("\n") == 1  # one line, no traceback
    return printed.err


def test_binary_design_and_circuit_files_are_one_line_errors(
    design_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both were UnicodeDecodeError tracebacks (exit 1)."""
    out = tmp_path / "out"
    (design_dir / "tile.toml").write_bytes(b"\x00\xd0\xff\xfe")
    err = _cli_err(capsys, design_dir / "design.toml", out)
    assert re.search(r"circuit: .*tile\.toml: not UTF-8 text \(byte 1\)", err), err
    assert err.count("\n") == 1  # one line
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\x7fELF\x00\xd0\xff")
    assert re.search(r"design file .*binary\.toml: not UTF-8 text", _cli_err(capsys, binary, out))
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    assert "cannot read design file" in _cli_err(capsys, folder, out)
    assert not out.exists()


def test_a_folder_as_circuit_file_is_named_a_folder(design_dir: Path) -> None:
    _replace(design_dir / "design.toml", 'circuit = "tile.toml"', 'circuit = "."')
    with pytest.raises(DesignError, match=r"circuit file '\.' is a folder"):  # was "not found"
        load_design(design_dir / "design.toml")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (".subckt s a b\nr1 a b 1k\n", r"x\.lib:1: \.subckt s has no \.ends"),
        (".subckt s a b\n.subckt t a\n.ends t\n", r"x\.lib:1: \.subckt s has no \.ends"),
        (".subckt s a b\n.ends s\n.ends\n", r"x\.lib:3: \.ends without a \.subckt"),
    ],
)
def test_scan_refuses_unbalanced_subckt_ends(text: str, match: str) -> None:
    """Found by the scan with the line (was left to ngspice's preflight: no line number,
    and after the output folder had been created)."""
    with pytest.raises(DesignError, match=match):
        scan_library(Path("x.lib"), text)


def test_scan_accepts_nested_subcircuits_and_crlf() -> None:
    text = ".SUBCKT s a b\r\n.subckt t a\r\nr1 a 0 1\r\n.ENDS t\r\nx1 a t\r\n.ends s\r\n"
    assert set(scan_library(Path("x.lib"), text).subckts) == {"s", "t"}


def test_out_that_is_a_file_or_lies_under_one_is_refused_first(
    design_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was an OSError (exit 1) after the preflight had run ngspice."""
    taken = tmp_path / "taken"
    taken.write_text("x")
    err = _cli_err(capsys, design_dir / "design.toml", taken)
    assert f"--out {taken}: exists and is not a folder" in err
    err = _cli_err(capsys, design_dir / "design.toml", taken / "sub" / "out")
    assert f"--out {taken / 'sub' / 'out'}: {taken} is not a folder" in err
    assert taken.read_text() == "x"


def test_stop_workers_kills_their_simulations_first() -> None:
    """What Ctrl-C and SIGTERM do (commands.verify._on_stop): an ngspice run lives in its
    own process group, out of reach of a terminal's Ctrl-C, and outlived its worker (a
    pathological transient ran on for its whole time limit or forever)."""
    import multiprocessing
    import os
    import time

    from rpucircuit.commands import verify as cmd

    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Queue()
    worker = ctx.Process(target=_worker_with_a_grandchild, args=(ready,))
    worker.start()
    try:
        grandchild = ready.get(timeout=20)
        assert cmd._children_of(worker.pid or -1) == [grandchild]
        cmd._stop_workers()
        worker.join(timeout=5)
        assert worker.exitcode == -9
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.kill(grandchild, 0)
            except ProcessLookupError:
                break
            time.sleep(0.02)
        else:
            pytest.fail("the worker's child survived it")
    finally:
        if worker.is_alive():
            worker.kill()


def _worker_with_a_grandchild(ready: object) -> None:
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    ready.put(proc.pid)  # type: ignore[attr-defined]
    proc.wait()


def test_jobs_below_one_is_bad_input(
    design_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 2 like every other bad input (was 1)."""
    design, out = str(design_dir / "design.toml"), str(tmp_path / "out")
    assert cli.main(["verify", design, "--out", out, "--jobs", "0"]) == 2
    assert capsys.readouterr().err == "rpucircuit verify: error: --jobs = 0: must be >= 1\n"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("special", ["fifo", "/dev/zero"])
def test_a_library_or_design_that_is_no_regular_file_is_refused(
    special: str, design_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A FIFO blocked the read forever; /dev/zero (size 0 to stat) was read until the
    machine ran out of memory."""
    import os

    if special == "fifo":
        target = tmp_path / "pipe.lib"
        os.mkfifo(target)
    else:
        target = Path(special)
        if not target.exists():
            pytest.skip("no /dev/zero here")
    _replace(design_dir / "design.toml", 'file = "rpu_drivers.lib"', f'file = "{target}"')
    err = _cli_err(capsys, design_dir / "design.toml", tmp_path / "out")
    assert f"cannot read library {target}: not a regular file" in err
    err = _cli_err(capsys, target, tmp_path / "out")
    assert f"cannot read design file {target}: not a regular file" in err
    assert not (tmp_path / "out").exists()


def test_a_library_over_the_limit_is_refused(design_dir: Path) -> None:
    (design_dir / "rpu_drivers.lib").write_text("* x\n" * (MAX_LIBRARY_BYTES // 4 + 1))
    with pytest.raises(DesignError, match=rf"at most {MAX_LIBRARY_BYTES} bytes"):
        load_design(design_dir / "design.toml")
