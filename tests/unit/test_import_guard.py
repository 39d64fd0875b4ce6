"""The model/training path must load without the circuit path (DESIGN.md, STYLE.md §12).

Imported in a fresh interpreter so modules other tests loaded cannot hide a dependency.
"""

from __future__ import annotations

import json
import subprocess
import sys

MODEL_PATH = (
    "rpucircuit.config.rpu",
    "rpucircuit.array",
    "rpucircuit.layers",
    "rpucircuit.network",
)
OPTIONAL_MODEL_PATH = ("rpucircuit.training", "rpucircuit.data", "rpucircuit.sweep")
CIRCUIT_PATH = (
    "rpucircuit.netlist",
    "rpucircuit.spice",
    "rpucircuit.extract",
    "rpucircuit.characterize",
    "PySpice",
)

_PROBE = """
import importlib, importlib.util, json, sys
required, optional = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for name in required:
    importlib.import_module(name)
loaded_optional = []
for name in optional:
    if importlib.util.find_spec(name) is not None:
        importlib.import_module(name)
        loaded_optional.append(name)
print(json.dumps({"modules": sorted(sys.modules), "optional": loaded_optional}))
"""


def test_model_path_imports_no_circuit_module() -> None:
    r = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(MODEL_PATH), json.dumps(OPTIONAL_MODEL_PATH)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    out = json.loads(r.stdout.strip().splitlines()[-1])
    modules = set(out["modules"])
    assert set(MODEL_PATH) <= modules  # the probe really imported the model path
    offending = sorted(
        m for m in modules if any(m == c or m.startswith(c + ".") for c in CIRCUIT_PATH)
    )
    assert offending == [], f"model path imported circuit-path modules: {offending}"
