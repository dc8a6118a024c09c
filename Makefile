# Two commands: `make run` opens the app, `make test` runs the test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The synthesizer that renders samples to audio; --no-deps leaves out PyAudio (live playback only,
# it needs PortAudio's C headers to build).
SYNTH := tinysoundfont>=0.3.7

.PHONY: run test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamp files record what was installed, so a second `make` skips the install.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[audio]'
	$(BIN)/python -m pip install --quiet --no-deps '$(SYNTH)'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,audio]'
	$(BIN)/python -m pip install --quiet --no-deps '$(SYNTH)'
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/tui-composer

# Two workers: half the tests wait on child processes, TUI frames or a model's tiny steps, so two
# cores run the suite in about 60% of the time one does (`pytest` alone still runs it serially).
test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

# Style, types and the architecture's import boundaries (contracts in pyproject.toml).
lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) build *.egg-info
