# The two commands a newcomer needs (see README.md). Both install what is missing first.
PY := .venv/bin/python

.PHONY: setup demo test lint bench

setup:
	bash scripts/setup.sh

demo: setup  ## the main job on the embedded default
	$(PY) -m rl.demo

test: setup  ## the whole test suite
	$(PY) -m pytest -q --durations=10

lint: setup
	$(PY) -m ruff check .

bench: setup
	$(PY) bench/render.py
