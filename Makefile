# Two set-up commands work on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint lock clean browser

$(STAMP): pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements/constraints.txt -e '.[dev]'
	touch $(STAMP)

## demo: install, migrate the SQLite default, load demo data, serve on 127.0.0.1:8000
demo: $(STAMP)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py demo

## test: every test (SQLite by default; PostgreSQL when DATABASE_URL points at it)
test: $(STAMP) browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## browser: Debian's chromium for the browser tests (Playwright cannot download its own)
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	        apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; \
	    else \
	        echo "The browser tests need /usr/bin/chromium: sudo apt-get install chromium chromium-driver" >&2; \
	        exit 1; \
	    fi; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## lock: re-pin every package after changing pyproject.toml's dependencies
lock:
	rm -rf /tmp/arbiter-lock && $(PYTHON) -m venv /tmp/arbiter-lock
	/tmp/arbiter-lock/bin/pip install --quiet --upgrade pip
	/tmp/arbiter-lock/bin/pip install --quiet -e '.[dev]'
	(echo "# Every package CI installs, pinned. Regenerate: make lock"; \
	 /tmp/arbiter-lock/bin/pip freeze --exclude-editable) > requirements/constraints.txt

clean:
	rm -rf $(VENV) arbiter.sqlite3 var/ staticfiles/
