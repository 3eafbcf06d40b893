# pglmon. `make demo` and `make test` install what they need (Debian, as root).
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

# Two local clusters replicating with pglogical, and pglmon watching them.
demo: deps build
	$(DEMO) up
	$(BIN) status --config $$($(DEMO) config) || true

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
	$(GO) test -race -count=1 -timeout 25m ./...
	@bash scripts/check-no-stray-postgres.sh

bench: deps
	$(GO) test -run '^$$' -bench . -benchtime 3s ./internal/probe/

clean:
	rm -rf bin
