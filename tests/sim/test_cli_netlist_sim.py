"""``rpucircuit netlist --out FILE`` writes a netlist that ngspice runs on its own.

Regression: the written netlist ``.include``\\d its libraries by bare name and nothing put
them beside it, so ``ngspice -b FILE`` failed with "Could not find include file". Now the
libraries are copied next to FILE; ngspice finds them there from any working folder.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from rpucircuit import cli
from rpucircuit.circuit import spice
from rpucircuit.config.base import to_toml
from rpucircuit.config.tile import gokmen_vlasov_2016

pytestmark = pytest.mark.sim

# The vectors each cycle's netlist writes (2 × 3 tile; the line cycle drives a 3-segment row).
VECTORS = {
    "forward": ["v(out0)", "v(out1)"],
    "backward": ["v(out0)", "v(out1)", "v(out2)"],
    "update": ["v(s0_0)", "v(s1_2)"],
    "noise": ["onoise_spectrum", "v(onoise_total)"],
    "line": ["v(l0)", "v(l2)"],
}


@pytest.mark.parametrize("cycle", sorted(VECTORS))
def test_written_netlist_runs_from_another_folder(cycle: str, tmp_path: Path) -> None:
    ngspice = shutil.which("ngspice")
    assert ngspice is not None, "ngspice is required for the sim tier"
    cfg_path = tmp_path / "tile.toml"
    cfg_path.write_text(to_toml(gokmen_vlasov_2016(rows=2, cols=3)), encoding="utf-8")
    out = tmp_path / "written" / "net.cir"
    assert cli.main(["netlist", str(cfg_path), "--cycle", cycle, "--out", str(out)]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run(
        [ngspice, "-b", str(out)],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0, log
    assert "could not find include file" not in log.lower()
    raw = spice.parse_raw((elsewhere / "out.raw").read_bytes())
    for name in VECTORS[cycle]:
        assert raw.vector(name).size > 0, name
