# Two commands on a fresh machine: `make run` (a real example job end to end) and `make test`.
SHELL := /bin/bash
NPM ?= npm
STAMP := node_modules/.install-stamp

.PHONY: all install build run test typecheck bench clean

all: build

# Installs exactly what package-lock.json pins; re-runs when the lock file changes.
$(STAMP): package.json package-lock.json
	$(NPM) ci --no-audit --no-fund --loglevel=error
	@touch $(STAMP)

install: $(STAMP)

build: $(STAMP)
	rm -rf dist
	npx tsc -p tsconfig.build.json

typecheck: $(STAMP)
	npx tsc -p tsconfig.json --noEmit

# Runs the real example job on the embedded default (a local folder store, local tasks).
run: build
	./bin/shardrun.js run summarize-docs --local --tasks 2 --shards 8

test: build typecheck
	@mkdir -p test-results
	npx vitest run --reporter=default --reporter=json --outputFile.json=test-results/vitest.json; \
	  status=$$?; node scripts/test-summary.mjs test-results/vitest.json || status=1; exit $$status

bench: build
	node dist/bench/run.js

clean:
	rm -rf dist .shardrun
