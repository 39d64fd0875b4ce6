"""The package layout is the architecture: two one-way paths that meet only in calibration.

``docs/architecture.md`` draws the picture; this test holds it. Every module of
``rpucircuit`` is parsed (no import runs, so nothing is hidden by what other tests loaded)
and each ``import`` statement, at module level or inside a function, is checked against the
layer rules below. A second test imports the model path in a fresh interpreter and checks
that neither the circuit path nor PySpice ends up in ``sys.modules``.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "rpucircuit"

# Layer of a module, by the longest matching prefix. "base" is what every layer may use.
LAYERS = {
    "rpucircuit": "base",
    "rpucircuit.errors": "base",
    "rpucircuit.fileio": "base",
    "rpucircuit.store": "base",
    "rpucircuit.jobs": "base",
    "rpucircuit.procs": "base",
    "rpucircuit.config": "base",
    "rpucircuit.config.tile": "circuit-config",
    "rpucircuit.config.rpu": "model-config",
    "rpucircuit.config.training": "model-config",
    "rpucircuit.circuit": "circuit",
    "rpucircuit.model": "model",
    "rpucircuit.training": "training",
    "rpucircuit.calibration": "calibration",
    "rpucircuit.design": "design",
    "rpucircuit.commands": "commands",
    "rpucircuit.cli": "commands",
}

# Which layers each layer may import (itself included).
ALLOWED = {
    "base": {"base"},
    "circuit-config": {"base", "circuit-config"},
    "model-config": {"base", "model-config"},
    "circuit": {"base", "circuit-config", "circuit"},
    "model": {"base", "model-config", "model"},
    "training": {"base", "model-config", "model", "training"},
    "calibration": {"base", "circuit-config", "model-config", "circuit", "model", "calibration"},
    # the design answers (explore, specs, verify) stand on both paths and on calibration
    "design": {
        "base",
        "circuit-config",
        "model-config",
        "circuit",
        "model",
        "training",
        "calibration",
        "design",
    },
    "commands": set(LAYERS.values()),
}

# The only command modules that may reach both paths: they are the design answers and the
# end-to-end job built on calibration.
BOTH_PATHS_COMMANDS = {
    "rpucircuit.commands.calibrate",
    "rpucircuit.commands.run",
    "rpucircuit.commands.explore",
    "rpucircuit.commands.specs",
    "rpucircuit.commands.verify",
    # co-simulated training: `train` with a [cosim] table runs circuit spot checks built on
    # calibration (rpucircuit.calibration.cosim), imported only when the table is given
    "rpucircuit.commands.train",
}

# Third-party packages that belong to the circuit path only.
CIRCUIT_ONLY_THIRD_PARTY = ("PySpice",)

MAX_LINES = 600
"""Longer modules must say why at their top (a line containing ``MAX_LINES_REASON``)."""
MAX_LINES_REASON = "Longer than 600 lines:"


def layer_of(module: str) -> str:
    """The layer of ``module`` (longest prefix in :data:`LAYERS`)."""
    best = ""
    for prefix in LAYERS:
        if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
            best = prefix
    if not best:
        raise KeyError(module)
    return LAYERS[best]


def module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import in ``path``, relative ones resolved."""
    me = module_name(path, root)
    is_pkg = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = me.split(".")
                base = base if is_pkg else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            yield mod, node.lineno
            # `from rpucircuit.circuit import netlist` imports the submodule netlist
            for alias in node.names:
                sub = f"{mod}.{alias.name}"
                if (root.parent / Path(*sub.split("."))).with_suffix(".py").is_file() or (
                    root.parent / Path(*sub.split(".")) / "__init__.py"
                ).is_file():
                    yield sub, node.lineno


def graph(root: Path) -> dict[str, dict[str, int]]:
    """Module -> {imported rpucircuit module or third-party top name: line}."""
    out: dict[str, dict[str, int]] = {}
    for path in sorted(root.rglob("*.py")):
        me = module_name(path, root)
        deps: dict[str, int] = {}
        for mod, line in imports_of(path, root):
            if mod.startswith(root.name + ".") or mod == root.name:
                deps.setdefault(mod, line)
            else:
                deps.setdefault(mod.split(".")[0], line)
        out[me] = deps
    return out


def violations(root: Path) -> list[str]:
    """Every import that breaks the layer rules, and every import circle, as text."""
    g = graph(root)
    bad: list[str] = []
    for me, deps in g.items():
        mine = layer_of(me)
        reached: set[str] = set()
        for dep, line in deps.items():
            if dep in CIRCUIT_ONLY_THIRD_PARTY and mine not in {"circuit", "calibration"}:
                bad.append(f"{me}:{line} imports {dep} (circuit path only)")
            if not dep.startswith(root.name):
                continue
            theirs = layer_of(dep)
            reached.add(theirs)
            if theirs not in ALLOWED[mine]:
                bad.append(f"{me}:{line} ({mine}) imports {dep} ({theirs})")
        both = reached & {"circuit", "circuit-config"} and reached & {"model", "training"}
        if mine == "commands" and both and me not in BOTH_PATHS_COMMANDS:
            bad.append(f"{me} imports both the circuit and the model path")
    bad += [f"import circle: {' -> '.join(c)}" for c in cycles(g)]
    return bad


def cycles(g: dict[str, dict[str, int]]) -> list[list[str]]:
    """Import circles among the package's modules (one per strongly connected set)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, {}):
            if w not in g:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in g.get(v, {}):
                found.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return found


def test_package_keeps_its_layers() -> None:
    assert violations(PACKAGE_DIR) == []


def test_every_module_has_a_layer() -> None:
    missing = [m for m in graph(PACKAGE_DIR) if not any(m.startswith(p) for p in LAYERS)]
    assert missing == []
    # and the layers named in the picture exist
    for pkg in ("circuit", "model", "calibration", "training", "config", "commands"):
        assert (PACKAGE_DIR / pkg / "__init__.py").is_file(), pkg


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def fake_package(tmp_path: Path) -> Path:
    """A copy of the package's file tree (sources only) to add wrong imports to."""
    root = tmp_path / "rpucircuit"
    for path in PACKAGE_DIR.rglob("*.py"):
        _write(root, str(path.relative_to(PACKAGE_DIR)), path.read_text())
    assert violations(root) == []
    return root


@pytest.mark.parametrize(
    ("rel", "text", "expected"),
    [
        # the model path reaching the circuit path, at module level and lazily
        ("model/extra.py", "from rpucircuit.circuit import spice\n", "(model) imports"),
        ("model/extra.py", "def f():\n    from ..circuit import nodal\n", "(model) imports"),
        ("model/extra.py", "from rpucircuit.config.tile import CircuitConfig\n", "(model)"),
        ("training/extra.py", "import rpucircuit.circuit.extract\n", "(training) imports"),
        ("model/extra.py", "import PySpice\n", "PySpice (circuit path only)"),
        # the circuit path reaching the model path or training
        ("circuit/extra.py", "from rpucircuit.model import kernels\n", "(circuit) imports"),
        ("circuit/extra.py", "from rpucircuit.training import sweep\n", "(circuit) imports"),
        # a shared module reaching up
        ("store_extra.py", "from rpucircuit.model import tile\n", "(base) imports"),
        # a command other than the design answers importing both paths
        (
            "commands/mixed.py",
            "from rpucircuit.circuit import nodal\nfrom rpucircuit.model import tile\n",
            "imports both the circuit and the model path",
        ),
        # a circle inside one layer
        ("model/a_mod.py", "from rpucircuit.model import b_mod\n", "import circle"),
    ],
)
def test_checker_catches_a_wrong_import(
    fake_package: Path, rel: str, text: str, expected: str
) -> None:
    _write(fake_package, rel, text)
    if rel == "model/a_mod.py":
        _write(fake_package, "model/b_mod.py", "from rpucircuit.model import a_mod\n")
    found = violations(fake_package)
    assert any(expected in v for v in found), found


def test_long_modules_say_why() -> None:
    unexplained = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        lines = path.read_text().splitlines()
        if len(lines) > MAX_LINES and not any(MAX_LINES_REASON in ln for ln in lines[:40]):
            unexplained.append(f"{path.relative_to(PACKAGE_DIR)} ({len(lines)} lines)")
    assert unexplained == []


# --------------------------------------------------------------------------- runtime probe

MODEL_PATH = (
    "rpucircuit.config.rpu",
    "rpucircuit.config.training",
    "rpucircuit.model.tile",
    "rpucircuit.model.kernels",
    "rpucircuit.model.layers",
    "rpucircuit.model.network",
    "rpucircuit.model.modelfile",
    "rpucircuit.model.irdrop",
    "rpucircuit.training",
    "rpucircuit.training.data",
    "rpucircuit.training.sweep",
    "rpucircuit.commands.train",
    "rpucircuit.commands.sweep",
    "rpucircuit.commands.model",
)
CIRCUIT_MODULES = ("rpucircuit.config.tile", "rpucircuit.circuit", "PySpice")

_PROBE = """
import importlib, json, sys
for name in json.loads(sys.argv[1]):
    importlib.import_module(name)
print(json.dumps(sorted(sys.modules)))
"""


def test_model_path_loads_without_the_circuit_path() -> None:
    """At run time too (a fresh interpreter, so modules other tests loaded cannot hide one):
    training and model files run on machines without ngspice or PySpice."""
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
        m for m in modules if any(m == c or m.startswith(c + ".") for c in CIRCUIT_MODULES)
    )
    assert offending == [], f"model path imported circuit-path modules: {offending}"
