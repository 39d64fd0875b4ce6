"""Regenerate the golden files in tests/golden/data/ (run from the repository root):

    python tests/golden/regenerate.py

Netlists: the rendered text of each cycle for a 2×3 tile of the paper-A preset with
conductances, inputs and bits drawn from ``numpy.random.default_rng(7)`` (see
``golden_netlists``). Raw files: ``rc_circuit.cir`` (an RC low-pass; op, noise, tran, ac)
run by ngspice once with ``filetype=binary`` and once with ``filetype=ascii``. Review the
diff of the regenerated files before committing them: a changed golden file is a changed
netlist.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from rpucircuit.circuit import netlist as nl
from rpucircuit.config.tile import gokmen_vlasov_2016

DATA = Path(__file__).resolve().parent / "data"

RC_CIRCUIT = """\
* golden raw files: RC low-pass (R = 1 kOhm, C = 1 pF, tau = 1 ns)
.options noinit noacct
v1 in 0 dc 0 ac 1 pulse(0 1 1e-9 1e-12 1e-12 1 2)
r1 in out 1e3
c1 out 0 1e-12
.control
set filetype={fmt}
set appendwrite
op
write {raw} all
noise v(out) v1 dec 10 1e3 1e12
setplot noise1
write {raw} all
setplot noise2
write {raw} all
tran 2e-11 6e-9
write {raw} v(out) i(v1)
ac dec 5 1e6 1e10
write {raw} v(out)
quit
.endc
.end
"""


def golden_netlists() -> dict[str, str]:
    """File name -> rendered text of the golden netlists."""
    cfg = gokmen_vlasov_2016(rows=2, cols=3)
    rng = np.random.default_rng(7)
    d = cfg.device
    gp = rng.uniform(d.g_off_s, d.g_on_s, (2, 3))
    gn = rng.uniform(d.g_off_s, d.g_on_s, (2, 3))
    x = np.array([0.5, -1.0, 0.3])
    xb = np.array([-0.7, 0.25])
    rb = rng.random((2, cfg.periphery.bl)) < 0.5
    cb = rng.random((3, cfg.periphery.bl)) < 0.5
    return {
        "forward_tran_2x3.cir": nl.render(nl.build_read(cfg, gp, gn, x)),
        "forward_op_2x3.cir": nl.render(nl.build_read(cfg, gp, gn, x, analysis="op")),
        "backward_tran_2x3.cir": nl.render(nl.build_read(cfg, gp, gn, xb, direction="backward")),
        "update_2x3.cir": nl.render(nl.build_update(cfg, gp, rb, cb)),
        "noise_3.cir": nl.render(nl.build_noise(cfg, gp[0], gn[0])),
        "noise_source_3.cir": nl.render(nl.build_noise(cfg, gp[0], gn[0], opamp_noise="source")),
        "line_4.cir": nl.render(nl.build_line(cfg, n=4)),
    }


def main() -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    for name, text in golden_netlists().items():
        (DATA / name).write_text(text, encoding="utf-8")
    (DATA / "rc_circuit.cir").write_text(RC_CIRCUIT, encoding="utf-8")
    for fmt in ("binary", "ascii"):
        with tempfile.TemporaryDirectory() as tmp:
            cir = Path(tmp) / "rc.cir"
            cir.write_text(RC_CIRCUIT.format(fmt=fmt, raw="out.raw"), encoding="utf-8")
            subprocess.run(["ngspice", "-b", "rc.cir"], cwd=tmp, check=True, capture_output=True)
            shutil.copyfile(Path(tmp) / "out.raw", DATA / f"rc_{fmt}.raw")
    print(f"wrote golden files to {DATA}")


if __name__ == "__main__":
    main()
