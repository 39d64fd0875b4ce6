#!/usr/bin/env bash
# Build the benchmark peers (PyTorch 2.13.0 CPU and IBM aihwkit 1.2.0) into a private
# virtual environment, bench/.cache/peers-venv, so the system Python that the package and
# its tests use is never touched. aihwkit and torch are benchmark-only extras: nothing in
# rpucircuit imports them.
#
# Why from source: PyPI's only cp311 wheel of aihwkit (1.1.0) was compiled against an older
# torch and fails at run time with torch 2.13 ("Invalid weights dimensions"). 1.2.0 builds
# from its source distribution in about 3.5 minutes on 2 cores. How the peer is built,
# configured and measured: docs/peers.md.
#
# Usage:   bash bench/setup_peers.sh            # idempotent; a second run only checks
#          bash bench/setup_peers.sh --deps-only   # everything but the aihwkit build
# Then:    .venv/bin/python bench/bench_training.py   (or: make bench)
set -euo pipefail
DEPS_ONLY=0
case "${1:-}" in
    "") ;;
    --deps-only) DEPS_ONLY=1 ;;
    *) echo "usage: bash bench/setup_peers.sh [--deps-only]" >&2; exit 2 ;;
esac
cd "$(dirname "$0")"
VENV="$PWD/.cache/peers-venv"
PY="$VENV/bin/python"

if [ -x "$PY" ] && "$PY" -c "import aihwkit, torch; assert aihwkit.__version__ == '1.2.0'" 2>/dev/null; then
    echo "peers already built in $VENV"
    "$PY" -c "import aihwkit, torch; print('torch', torch.__version__, '| aihwkit', aihwkit.__version__)"
    exit 0
fi

SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
# Build tools and the OpenBLAS headers/library aihwkit's CPU simulator links against.
if ! dpkg -s libopenblas-dev >/dev/null 2>&1 || ! command -v cmake >/dev/null || ! command -v g++ >/dev/null; then
    $SUDO apt-get update
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y libopenblas-dev cmake ninja-build g++
fi

# The venv sees the system site-packages (numpy, scipy, tqdm) but installs into itself.
python3 -m venv --system-site-packages "$VENV"
"$PY" -m pip install -q --upgrade pip
# torch==2.13.0 (CPU) resolves from the local wheel folder where one is configured.
"$PY" -m pip install -q "torch==2.13.0"
"$PY" -m pip install -q "scikit-build>=0.18.1" "pybind11>=3.0.1" ninja "cmake>=3.18" setuptools wheel
# The build ends by running mypy's `stubgen` on the compiled module (a bare command found on
# PATH): without it the build fails at the very end with "stubgen: not found". Same mypy
# version as the project's own lint (constraints.txt).
"$PY" -m pip install -q -c ../constraints.txt mypy
# aihwkit's runtime requirements (installed by hand because the build uses --no-deps).
# numpy and scipy come from the system site-packages when present, else from the registry.
"$PY" -m pip install -q numpy scipy "torchvision==0.28.0" "requests>=2.25,<3" "protobuf>=4.21.6"

if [ "$DEPS_ONLY" = 1 ]; then
    "$VENV/bin/stubgen" --version
    echo "build dependencies ready in $VENV (aihwkit not built: --deps-only)"
    exit 0
fi

# The peers' venv's bin/ (stubgen, cmake, ninja) first on PATH, as in an activated venv.
export PATH="$VENV/bin:$PATH"
export USE_CUDA=OFF
export CMAKE_PREFIX_PATH="$("$PY" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')"
export OpenBLAS_HOME="${OpenBLAS_HOME:-/usr}"
export MAX_JOBS="${MAX_JOBS:-2}"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"
"$PY" -m pip install --no-build-isolation --no-deps --no-binary aihwkit "aihwkit==1.2.0"

"$PY" - <<'PYEOF'
import aihwkit, torch
from aihwkit.nn import AnalogLinear
layer = AnalogLinear(4, 3)
y = layer(torch.ones(1, 4))
assert tuple(y.shape) == (1, 3), y.shape
print("torch", torch.__version__, "| aihwkit", aihwkit.__version__, "| AnalogLinear OK")
PYEOF
