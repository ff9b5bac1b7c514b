# Two commands for a newcomer: `make demo` and `make test`. Everything else here serves them.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements-nodeps.txt | cksum | cut -d' ' -f1)
# llama.cpp compiles from source once; use both cores
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2

.PHONY: setup browser postgres festival demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements-nodeps.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip wheel
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# packages whose declared dependencies we don't want (see the file's comments)
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-nodeps.txt
	rm -f $(VENV)/.installed-*
	touch $@

demo: setup
	$(BIN)/doppel reply --demo --audio assets/question.ogg --user demo --out out/demo-reply.ogg --video out/demo-reply.mp4

test: setup browser postgres
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# the web tests drive Debian's headless Chromium: installed here when missing and we are root
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	else echo "chromium and chromium-driver are missing: the web tests will fail (apt-get install chromium chromium-driver)"; fi

# the storage tests start a throwaway PostgreSQL server (tests/postgres.py): installed here when missing and we are root
postgres:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	else echo "postgresql is missing: the PostgreSQL storage tests will fail (apt-get install postgresql)"; fi

# the many-voice lite base's Festival speakers (RVC/base_corpus.py): installed here when missing and we are root
festival:
	@if command -v text2wave >/dev/null && [ -d /usr/share/festival/voices/italian ] && [ -d /usr/share/festival/voices/russian ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq festival festvox-italp16k festvox-itapc16k festvox-ru; \
	else echo "festival and its voices are missing: the base set will have no Festival speakers (apt-get install festival festvox-italp16k festvox-itapc16k festvox-ru)"; fi

bench: setup
	$(BIN)/python bench/latency.py

clean:
	rm -rf $(VENV) out var
