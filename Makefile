# nodebake — bake immutable Kubernetes worker images.
#
#   make image   set up a fresh Debian machine (as root) and build the worker
#                image from images/worker.yaml into out/
#   make test    set up, then run every test: the fast tier and the real-world
#                tier (components built from source, QEMU boots, Packer)

SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
export GOFLAGS := -buildvcs=false
export CGO_ENABLED := 0

# Debian packages the build and the tests use.
DEBS := mmdebstrap squashfs-tools gdisk dosfstools mtools e2fsprogs qemu-system-x86 \
        ovmf qemu-utils libseccomp-dev gcc libc6-dev zstd openssl wireguard-tools attr \
        squashfs-tools-ng genisoimage util-linux mount tar git ca-certificates

.PHONY: all deps bin base image test test-fast test-slow vet clean

all: bin

include plugin/Makefile.inc

deps:
	@if [ "$$(id -u)" != 0 ]; then echo "make deps installs Debian packages and needs root" >&2; exit 1; fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DEBS) >/dev/null

bin:
	mkdir -p bin
	$(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o bin/nodebake ./builder/cmd/nodebake
	$(GO) build -trimpath -ldflags "-s -w" -o bin/nodebake-firstboot ./layers/firstboot/cmd/nodebake-firstboot

base: bin
	NODEBAKE=bin/nodebake scripts/build-base.sh
	NODEBAKE=bin/nodebake scripts/build-pause.sh

image: deps base
	bin/nodebake build -o out images/worker.yaml

vet:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed" >&2; exit 1; }
	$(GO) vet ./...

test-fast: vet plugin-check-generated plugin-test plugin-check
	$(GO) test -count=1 ./...

test-slow: base
	mkdir -p build
	NODEBAKE_SLOW=1 NODEBAKE_REQUIRE_TOOLS=1 $(GO) test -count=1 -timeout 70m -v ./test/... 2>&1 | tee build/test-slow.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok|\s+\S+_test.go)' ; exit $${PIPESTATUS[0]}
	$(MAKE) plugin-acc

test: deps bin
	NODEBAKE_REQUIRE_TOOLS=1 $(MAKE) test-fast
	$(MAKE) test-slow

clean:
	rm -rf bin out
