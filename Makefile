# cfglab: environment, tests and book. No activation needed: tools run as $(PY) -m ... (jupyter-book has no
# `-m` entry point, so its venv script is called directly).
#   make venv   create .venv (python3.11) and install requirements.txt + cfglab (editable)
#   make book   execute every chapter and build the HTML book into _build/html; any warning fails
#   make test   lint and types, unit tests, notebook tests (nbval), the student edition, the book, then the browser test
#   make strip  clear the outputs of the notebooks (chapters, book pages) before committing them
#   make lint   ruff over the repository and mypy over the cfglab package (its public API is fully typed)
#   make student  regenerate the student edition (student/*.ipynb) from the chapters
#   make test-compat  run every chapter in a second environment (.venv-compat: the oldest supported versions, Colab's
#               ipywidgets 7.7, another torch), with cfglab installed from git as the setup cell does; slow, not in CI
#   make clean  remove build outputs (keeps .venv)

PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
JB     := $(VENV)/bin/jupyter-book

.PHONY: venv lint book test test-unit test-notebooks test-book test-student test-compat student strip clean

venv: $(STAMP)

# Reinstall only when requirements.txt or pyproject.toml changes (or the venv is new).
$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install -e . --no-deps
	touch $@

# -W: warnings are errors; -n: nitpicky (every cross-reference must resolve); --keep-going: report every
# warning before failing; --all: read (and so execute) every page, because an incremental build would not repeat
# the warnings of pages that did not change since a failed build and would then pass.
book: venv
	$(JB) build . --warningiserror --nitpick --keep-going --all

# Tests and notebooks use toy-sized tensors: one torch thread per process, two processes (xdist) on the two cores
# beats two threads in one process, and never oversubscribes a busy machine.
export OMP_NUM_THREADS := 1
# The book and the tests run the worked solutions: an exercise check that fails there is an error, not a fallback to
# the course's reference (cfglab.exercises.Verdict.or_reference). Learners' notebooks run without it.
export CFGLAB_EXERCISES := strict

test-unit: venv
	$(PY) -m pytest tests --ignore=tests/test_book.py -m "not student and not book" -n 2

# Runs every student notebook in a kernel with every stub unfinished: it must run to the end, each check saying
# "not written yet" and handing the cells below the course's reference. (With every solution in, a student notebook
# is its chapter cell for cell, a fast test of test-unit; the chapters themselves run in test-notebooks.)
test-student: venv
	$(PY) -m pytest tests/test_student.py -m student -n 2

# Runs every chapter notebook (nbval-lax: only cells marked nbval-check-output compare outputs); --dist loadfile
# keeps each notebook's cells on one worker, in order. No chapters
# yet (no folder, or pytest's exit code 5, nothing collected) is not a failure.
test-notebooks: venv
	test ! -d chapters || $(PY) -m pytest --nbval-lax -p no:cacheprovider -n 2 --dist loadfile chapters/ \
		|| test $$? -eq 5

# Lint and types: ruff settings and mypy's strictness live in pyproject.toml.
lint: venv
	$(PY) -m ruff check .
	$(PY) -m mypy cfglab

test-book: venv
	$(PY) -m pytest tests/test_book.py tests/test_prose.py

COMPAT := .venv-compat
test-compat:
	test -x $(COMPAT)/bin/python || $(PYTHON) -m venv $(COMPAT)
	$(COMPAT)/bin/python -m pip install -q -r requirements-compat.txt
	$(COMPAT)/bin/python -m pip install -q --upgrade pip
	$(COMPAT)/bin/python -m pip install -q --force-reinstall --no-deps --no-cache-dir "git+file://$(CURDIR)"
	$(COMPAT)/bin/python -m pip check
	$(COMPAT)/bin/python tools/compat.py

test: lint test-unit test-notebooks test-student book test-book

# Chapters are committed without outputs: drop outputs, execution counts and stored widget state.
define STRIP_NOTEBOOKS
import sys, nbformat
for path in sys.argv[1:]:
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)
endef
export STRIP_NOTEBOOKS

# The student edition: student/NN_name.ipynb from chapters/NN_name.ipynb (solutions become stubs), and the
# table of book/student.md. `$(PY) tools/student_edition.py --check` lists what is stale.
student: venv
	$(PY) tools/student_edition.py

strip: venv
	$(PY) -c "$$STRIP_NOTEBOOKS" $(wildcard chapters/*.ipynb book/*.ipynb)

clean:
	rm -rf _build .pytest_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
