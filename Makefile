# Two commands for a newcomer: `make demo` and `make test`; `make check` is the fast lane while working.
# Everything else here serves them.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements-nodeps.txt | cksum | cut -d' ' -f1)
# llama.cpp compiles from source once; use both cores
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2

.PHONY: setup browser postgres speech festival demo check lint test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements-nodeps.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip wheel
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# packages whose declared dependencies we don't want (see the file's comments)
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-nodeps.txt
	rm -f $(VENV)/.installed-*
	touch $@

demo: setup festival
	$(BIN)/doppel reply --demo --audio assets/question.ogg --user demo --out out/demo-reply.ogg --video out/demo-reply.mp4

# lint, type check and the tests that load no models and train nothing (slow ones: see tests/conftest.py)
check: setup lint speech
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

# ruff's and mypy's settings, and what they look at, are in pyproject.toml
lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

test: setup lint browser postgres speech festival
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

# the tests' real speech (tests/speech.py): Debian's Asterisk prompts, 16 kHz G.722 recordings and their
# transcripts, made into voice notes once (in ~/.cache/doppel/speech)
SPEECH_PACKAGES := $(foreach l,en es fr,asterisk-core-sounds-$(l) asterisk-core-sounds-$(l)-g722)
speech: setup
	@if dpkg -s $(SPEECH_PACKAGES) >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SPEECH_PACKAGES); \
	else echo "the test speech is missing: most tests will fail (apt-get install $(SPEECH_PACKAGES))"; fi
	$(BIN)/python -m tests.speech

# Russian is spoken by Festival (adapters/tts_festival.py), a Debian program with a Debian voice; the Italian
# voices are speakers of the many-voice lite base (RVC/base_corpus.py): installed here when missing and we are root
FESTIVAL_PACKAGES := festival festvox-ru festvox-italp16k festvox-itapc16k
festival:
	@if command -v text2wave >/dev/null && [ -d /usr/share/festival/voices/russian/msu_ru_nsh_clunits ] \
	  && [ -d /usr/share/festival/voices/italian ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(FESTIVAL_PACKAGES); \
	else echo "$(FESTIVAL_PACKAGES) are missing: Russian answers will fail to speak (apt-get install $(FESTIVAL_PACKAGES))"; fi

bench: setup
	$(BIN)/python bench/latency.py

clean:
	rm -rf $(VENV) out var
