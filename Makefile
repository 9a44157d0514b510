# Two commands for a new user: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1

.PHONY: test test-all demo demo-video demo-av bench venv clean

venv: $(STAMP)

$(STAMP): requirements.txt setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow" tests

test-all: $(STAMP)
	$(PY) -m pytest -q tests

demo: $(STAMP)
	$(PY) -m svt.demos.single_modality --output results/demo

demo-video: $(STAMP)
	$(PY) -m svt.demos.single_modality --modality video --output results/demo-video --num-train 24 --num-test 8 \
		--duration 4 --epochs 4

demo-av: $(STAMP)
	$(PY) -m svt.demos.audio_visual --output results/demo-av

bench: $(STAMP)
	$(PY) benchmarks/bench_labels_decoding.py
	$(PY) benchmarks/bench_utterance_loading.py
	$(PY) benchmarks/bench_transcribe.py
	$(PY) benchmarks/bench_cli_startup.py
	$(PY) benchmarks/bench_score_memory.py

clean:
	rm -rf $(VENV) results .pytest_cache
