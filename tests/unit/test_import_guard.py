"""The model/training path must load without the circuit path (DESIGN.md, STYLE.md §12).

Imported in a fresh interpreter so modules other tests loaded cannot hide a dependency.
"""

from __future__ import annotations

import json
import subprocess
import sys

MODEL_PATH = (
    "rpucircuit.config.rpu",
    "rpucircuit.config.training",
    "rpucircuit.array",
    "rpucircuit.kernels",
    "rpucircuit.layers",
    "rpucircuit.network",
    "rpucircuit.training",
    "rpucircuit.data",
    "rpucircuit.sweep",
    "rpucircuit.commands.train",
    "rpucircuit.commands.sweep",
)
CIRCUIT_PATH = (
    "rpucircuit.config.tile",
    "rpucircuit.netlist",
    "rpucircuit.spice",
    "rpucircuit.extract",
    "rpucircuit.characterize",
    "rpucircuit.nodal",
    "rpucircuit.analytic",
    "PySpice",
)

_PROBE = """
import importlib, json, sys
for name in json.loads(sys.argv[1]):
    importlib.import_module(name)
print(json.dumps(sorted(sys.modules)))
"""


def test_model_path_imports_no_circuit_module() -> None:
    r = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(MODEL_PATH)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    modules = set(json.loads(r.stdout.strip().splitlines()[-1]))
    assert set(MODEL_PATH) <= modules  # the probe really imported the model path
    offending = sorted(
        m for m in modules if any(m == c or m.startswith(c + ".") for c in CIRCUIT_PATH)
    )
    assert offending == [], f"model path imported circuit-path modules: {offending}"
