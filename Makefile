# pglmon. `make demo` and `make test` install what they need (Debian, as root).
# Go as installed on the project's machines, when it is not on the PATH already.
export PATH := $(PATH):/usr/local/go/bin
GO      ?= go
BIN     := bin/pglmon
DEMO    := bin/pglmon-demo
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: build deps demo demo-status demo-down test vet bench clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/pglmon
	$(GO) build -o $(DEMO) ./cmd/pglmon-demo

deps:
	bash scripts/install-deps.sh

# Two local clusters replicating with pglogical, and the pglmon daemon
# watching (and repairing) them in the foreground. Ctrl-C stops pglmon.
demo: deps build
	$(DEMO) up
	$(BIN) heartbeat install --config $$($(DEMO) config)
	$(BIN) status --config $$($(DEMO) config) || true
	@echo
	@echo "pglmon is running:  metrics http://127.0.0.1:9198/metrics   status http://127.0.0.1:9198/api/v1/status"
	@echo "In another terminal: bin/pglmon-demo break origin   (see README: The demo). Ctrl-C stops pglmon."
	@echo
	$(BIN) run --config $$($(DEMO) config)

demo-status: build
	$(BIN) status --config $$($(DEMO) config)

demo-down: build
	$(DEMO) down

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	$(GO) vet ./...

# Every test, the real-PostgreSQL ones included.
test: deps vet
	$(GO) test -race -count=1 -parallel 4 -timeout 25m ./...
	@bash scripts/check-no-stray-postgres.sh

# Benchmarks print their figures; they are not part of `make test`.
bench: deps
	$(GO) test -run '^$$' -bench . -benchtime 3s ./internal/probe/ ./internal/metrics/ ./internal/serverlog/ ./internal/heartbeat/ ./internal/seqcompare/
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./internal/daemon/ ./internal/verify/ ./cmd/pglmon/

clean:
	rm -rf bin
