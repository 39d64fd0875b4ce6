# rpucircuit: set up, run, test. Every target installs what it needs on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: ngspice setup lock demo test lint bench models clean

ngspice:  ## Debian's ngspice (39.x) and its shared library
	@command -v ngspice >/dev/null 2>&1 || { $(SUDO) apt-get update && $(SUDO) apt-get install -y ngspice libngspice0; }

# constraints.txt pins every dependency to the versions tested (refresh: make lock).
$(BIN)/rpucircuit: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	@touch $@

setup: ngspice $(BIN)/rpucircuit  ## everything the tests and the main job need

lock:  ## re-resolve pyproject.toml's dependencies in a scratch venv; pin them in constraints.txt
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; trap 'exit 1' INT TERM; \
	$(PYTHON) -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/pip" install -q --upgrade pip; \
	"$$tmp/venv/bin/pip" install -q -e '.[test]'; \
	{ grep '^#' constraints.txt 2>/dev/null || true; \
	  "$$tmp/venv/bin/pip" freeze --exclude-editable; } > "$$tmp/constraints.txt"; \
	mv "$$tmp/constraints.txt" constraints.txt; \
	echo "constraints.txt rewritten; run make setup test lint, then commit it"

demo: setup  ## the main job on the embedded default: characterize, calibrate, train, report (docs/main-job.md)
	$(BIN)/rpucircuit run --out runs/demo

test: setup  ## the whole test suite (real ngspice included)
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check rpucircuit tests bench
	$(BIN)/ruff format --check rpucircuit tests bench
	$(BIN)/mypy

bench: setup  ## training speed at batch 1 vs aihwkit 1.2 and PyTorch (peers built once into bench/.cache)
	bash bench/setup_peers.sh
	$(BIN)/python bench/bench_training.py

# Paper A's tile, the full campaign (one worker; minutes), and the model calibrated from it.
# The campaign reuses its per-job cache, sim_data/paper-a/cache/ (git-ignored), so a rebuild
# that finds it takes seconds and, with SOURCE_DATE_EPOCH fixing the creation time
# (2026-12-06), writes the committed characterization.h5 byte for byte; the model file, which
# records no creation time, then too. A rebuild without the cache simulates again: the file
# then records the jobs' run times, so its sha256, and the model's link to it, change.
PAPER_A       := sim_data/paper-a
PAPER_A_EPOCH := 1796515200

models: setup  ## rebuild the shipped array-model files in models/ and paper A's campaign (docs/model-file.md)
	$(BIN)/rpucircuit model export gokmen_vlasov_2016 --out models/gokmen_vlasov_2016.h5 --ir-drop-ratio 6e-9
	$(BIN)/rpucircuit model export gokmen_onen_haensch_2017 --out models/gokmen_onen_haensch_2017.h5
	SOURCE_DATE_EPOCH=$(PAPER_A_EPOCH) $(BIN)/rpucircuit characterize --out $(PAPER_A) --jobs 1 --no-progress
	env -u SOURCE_DATE_EPOCH $(BIN)/rpucircuit calibrate $(PAPER_A)/characterization.h5 \
	    --out models/gokmen_vlasov_2016_calibrated.h5 --plots models/gokmen_vlasov_2016_calibrated_plots

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
