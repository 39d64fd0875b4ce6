"""The command line dispatcher, called in-process."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys

import pytest

from rpucircuit import cli


def test_info_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("rpucircuit ")
    assert "ngspice" in out


def test_info_reports_ngspice_as_the_backend_does(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rpucircuit.circuit import spice

    assert cli.main(["info"]) == 0
    (line,) = [ln for ln in capsys.readouterr().out.splitlines() if ln.split()[0] == "ngspice"]
    assert line.split()[1] == spice.ngspice_version()  # e.g. "ngspice-39", one format
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "ngspice      not available: ngspice not found on PATH" in out


def test_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["frobnicate"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def _run_into_closed_pipe(argv: list[str]) -> subprocess.CompletedProcess[bytes]:
    """Run ``rpucircuit ARGV`` with standard output a pipe whose reader has already gone
    (what ``rpucircuit ... | head`` becomes once ``head`` exits), deterministically."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "rpucircuit.cli", *argv],
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize("argv", [["info"], ["netlist"], ["netlist", "--cycle", "update"]])
def test_closed_stdout_ends_quietly(argv: list[str]) -> None:
    # Regression: `rpucircuit ... | head` ended in a BrokenPipeError traceback.
    done = _run_into_closed_pipe(argv)
    err = done.stderr.decode()
    assert "Traceback" not in err
    assert "BrokenPipeError" not in err
    assert "Exception ignored" not in err
    assert done.returncode == cli.EXIT_BROKEN_PIPE


def test_closed_stdout_in_process_is_not_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    # An in-process caller whose stdout raises BrokenPipeError gets the status, no exception.
    class Closed(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    with contextlib.redirect_stdout(Closed()):
        assert cli.main(["netlist", "--cycle", "line"]) == cli.EXIT_BROKEN_PIPE
    assert "Traceback" not in capsys.readouterr().err
