# snmech: two commands do everything (see README.md).
#   make demo   set up .venv if needed, then run the demo
#   make test   set up .venv if needed, then run every test (serial, then 2 MPI ranks)

VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.snmech-installed
EXTRAS  ?= fem,dev
NEED_MB ?= 7000

# A Python 3.12 interpreter: PYTHON if given, else python3.12 / python3 on PATH
# (only if it really runs and is 3.12; a pyenv shim may not), else pyenv's install.
define find_python312
for c in "$(PYTHON)" python3.12 python3 $$HOME/.pyenv/versions/3.12*/bin/python3.12 /usr/local/bin/python3.12 /usr/bin/python3.12; do \
  [ -n "$$c" ] || continue; \
  if "$$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' >/dev/null 2>&1; then echo "$$c"; exit 0; fi; \
done; exit 1
endef

.PHONY: demo test lint typecheck bench clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	@if [ ! -x "$(PY)" ]; then \
	  py=$$($(find_python312)) || { \
	    echo "error: snmech needs Python 3.12 (the dolfinx wheel dolfinx-solver-real is cp312)." >&2; \
	    echo "       Install it (e.g. 'pyenv install 3.12', or your OS package python3.12)," >&2; \
	    echo "       or point to one: make PYTHON=/path/to/python3.12 test" >&2; exit 1; }; \
	  free_mb=$$(df -Pm . | awk 'NR==2 {print $$4}'); \
	  if [ -n "$$free_mb" ] && [ "$$free_mb" -lt $(NEED_MB) ]; then \
	    echo "error: $$free_mb MB free on the disk of $$(pwd); the new $(VENV) (torch's CUDA build," >&2; \
	    echo "       dolfinx, PETSc) needs about $(NEED_MB) MB. Free some space and run make again." >&2; exit 1; \
	  fi; \
	  echo "creating $(VENV) with $$py"; \
	  "$$py" -m venv $(VENV) || exit 1; \
	fi
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/snmech info
	$(VENV)/bin/snmech check-fem
	$(VENV)/bin/snmech demo --out results

test: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -m "not mpi" -q
	OMP_NUM_THREADS=1 $(VENV)/bin/mpirun -n 2 $(PY) -m pytest -m mpi -q -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check snmech tests benchmarks examples
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
