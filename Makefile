# Lending backend. `make run` serves the local stack, `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3.12
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha1sum | cut -c1-12)
STAGE ?= prod

.PHONY: venv run jobs test browser fuzz docs soak package publish-web check-secrets verify-ledger policies iam-check bench model clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (pyenv install 3.12)"; exit 1; }
	@echo "==> Installing the dependencies into $(VENV) (first run only, or after a requirements change: a minute or a few)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade "pip<26.3"  # chalice 1.34 declares pip<26.3
	@# pip's own progress (one line per package), without the noise of what is already there
	@$(BIN)/python -m pip install --progress-bar on -r requirements.txt -r requirements-dev.txt \
		| grep --line-buffered -v '^Requirement already satisfied'; test $${PIPESTATUS[0]} -eq 0
	@rm -f $(VENV)/.installed-* && touch $@
	@echo "==> Dependencies installed"

CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(shell sha1sum requirements-checkov.txt | cut -c1-12)

$(CHECKOV_STAMP): requirements-checkov.txt  # own venv: checkov pins a boto3 the app cannot use
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (pyenv install 3.12)"; exit 1; }
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install -q --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install -q -r requirements-checkov.txt
	@rm -f $(CHECKOV_VENV)/.installed-* && touch $@

OUTBOX := $(or $(OUTBOX_PATH),var/outbox.jsonl)

run: venv  ## serve the API on 127.0.0.1:8000 with moto on :5000 (Ctrl-C stops)
	@# The data lives in memory and starts fresh on each run; so does the SMS/push outbox.
	@mkdir -p $(dir $(OUTBOX)) && : > $(OUTBOX)
	exec $(BIN)/python -m infra.local_stack serve

jobs: venv  ## run every scheduled job as of AT against the running stack, then drain queues
	@test -n "$(AT)" || { echo 'usage: make jobs AT=2027-01-10T09:00:00+08:00'; exit 2; }
	$(BIN)/python -m infra.local_stack jobs --at "$(AT)"

test: venv $(CHECKOV_STAMP) browser  ## the whole suite: unit, routes/events on moto, end-to-end on the local stack (with the schemathesis CLI and the page in Chromium), checkov on the template, then IAM coverage
	IAM_COVERAGE=required H5_BROWSER=required CHECKOV=$(CHECKOV_VENV)/bin/checkov $(BIN)/python -m pytest -q -p no:cacheprovider tests

# Debian's Chromium for the page's browser tests (Playwright drives it; no browser download),
# and a Chinese font so its screenshots show text. Installed once, as root or through sudo.
BROWSER_PACKAGES := chromium fonts-wqy-microhei
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
browser:  ## install Debian's chromium and a CJK font when missing (for make test)
	@if ! command -v chromium >/dev/null || ! fc-list :lang=zh 2>/dev/null | grep -q .; then \
		echo "==> Installing Chromium and a Chinese font from Debian's packages (first run only)"; \
		$(SUDO) apt-get install -y -qq $(BROWSER_PACKAGES) >/dev/null 2>&1 \
		|| { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $(BROWSER_PACKAGES); }; \
	fi

fuzz: venv  ## only the schemathesis CLI run (part of make test), with its report
	$(BIN)/python -m pytest -q -p no:cacheprovider -s tests/e2e/test_schemathesis_cli.py

docs: venv  ## regenerate the generated tables and examples in docs/ (a test checks them)
	$(BIN)/python -m infra.docs

SEEDS ?= $(or $(SIM_SEEDS),200)
STEPS ?= 60
soak: venv  ## the seeded fault simulator over SEEDS seeds (replay one: python -m tests.proof.simulator --seed N -v)
	$(BIN)/python -m tests.proof.simulator --seeds $(SEEDS) --first $${SIM_FIRST:-0} --steps $(STEPS)

package: venv $(CHECKOV_STAMP)  ## chalice package + merge template into build/$(STAGE), linted, checked, scanned by checkov
	$(BIN)/python -m infra.package --stage $(STAGE) --checkov $(CHECKOV_VENV)/bin/checkov

publish-web: venv  ## after a deploy: web/ to STAGE's web bucket (under app/), then CloudFront's copy invalidated
	$(BIN)/python -m infra.publish_web --stage $(STAGE)

check-secrets: venv  ## after a deploy: the partner settings still to fill in STAGE's secrets (names only)
	$(BIN)/python -m infra.readiness --stage $(STAGE)

verify-ledger: venv  ## walk every ledger chain and anchor of the running local stack (or STAGE=dev|prod; LOAN=<id> for one)
	$(BIN)/python -m infra.verify_ledger --stage $(if $(filter file,$(origin STAGE)),local,$(STAGE)) $(if $(LOAN),--loan $(LOAN))

policies: venv  ## regenerate .chalice/policies/<stage>/<function>.json (one IAM policy per function)
	$(BIN)/python -m infra.policy

iam-check: venv  ## the last test run's AWS calls (build/iam-calls.json) against build/$(STAGE)/sam.json
	$(BIN)/python -m infra.iam_check --template build/$(STAGE)/sam.json

bench: package  ## the benchmark report: table in bench/README.md, build/bench.json (QUICK=1: smoke run)
	$(if $(QUICK),BENCH_SCALE=0.1 )$(BIN)/python -m bench.run

MODEL_VENV := .venv-model
MODEL_STAMP := $(MODEL_VENV)/.installed-$(shell sha1sum requirements-model.txt | cut -c1-12)

$(MODEL_STAMP): requirements-model.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (pyenv install 3.12)"; exit 1; }
	@test -x $(MODEL_VENV)/bin/python || $(PYTHON) -m venv $(MODEL_VENV)
	$(MODEL_VENV)/bin/python -m pip install -q --upgrade pip
	$(MODEL_VENV)/bin/python -m pip install -q -r requirements-model.txt
	@rm -f $(MODEL_VENV)/.installed-* && touch $@

model: $(MODEL_STAMP)  ## retrain the credit model from scratch (fixed seeds), export, place the artifact
	$(MODEL_VENV)/bin/python -m models.train
	$(MODEL_VENV)/bin/python -m models.place

clean:
	rm -rf build var .pytest_cache
