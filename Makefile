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
        squashfs-tools-ng genisoimage util-linux mount tar git ca-certificates ipxe-qemu cpio \
        iproute2 ntpsec-ntpdig cryptsetup-bin sbsigntool python3-pefile
# Newer than bookworm's own: osslsigncode 2.5 rejects valid Authenticode
# signatures; virt-fw-vars enrolls Secure Boot keys into OVMF variables.
DEBS_BACKPORTS := osslsigncode python3-virt-firmware

.PHONY: all deps bin base image test test-fast test-slow test-e2e vet clean fuzz-short FORCE

all: bin

include plugin/Makefile.inc

deps:
	scripts/deps.sh $(DEBS) -- $(DEBS_BACKPORTS)

bin:
	mkdir -p bin
	$(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o bin/nodebake ./builder/cmd/nodebake
	scripts/build-firstboot.sh bin/nodebake-firstboot

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
	$(MAKE) fuzz-short

# The first-boot parsers' fuzz targets (hostile nesting, long inputs, key,
# certificate and kubeconfig variants; the platforms' user data decoding,
# Azure's goal state, the config drives' ISO 9660 and FAT readers) and the
# spec's path checks, each for FUZZTIME. `go test` alone runs their seed corpora.
FUZZTIME ?= 10s
FUZZ_TARGETS := layers/firstboot/strictyaml:FuzzParse layers/firstboot/strictyaml:FuzzParseNested \
	layers/firstboot/nodeconfig:FuzzParse layers/firstboot/nodeconfig:FuzzLoad \
	layers/firstboot/nodeconfig:FuzzWireGuardKey layers/firstboot/nodeconfig:FuzzCertificate \
	layers/firstboot/nodeconfig:FuzzKubeconfig \
	layers/firstboot/platform:FuzzDecode layers/firstboot/platform:FuzzParseGoalState \
	layers/firstboot/iso9660:FuzzReadFile layers/firstboot/fat:FuzzReadFile \
	layers/spec:FuzzPathProblem layers/spec:FuzzResolveSource

fuzz-short:
	@set -e -o pipefail; for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t#*:} in $${t%%:*} for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}\$$" -fuzztime $(FUZZTIME) ./$${t%%:*} | grep -v '^fuzz: elapsed'; \
	done

# The real-world tier: the pinned set built from source (cached by version
# in build/cache), QEMU boots (disk, qcow2, netboot over HTTP and iPXE),
# the platform readers against real services (amazon-ec2-metadata-mock),
# one image booted once per platform in a network lab (test/platform:
# ten TCG boots, about 13 minutes: more than go test's default -timeout),
# every output format, reproducibility, verified boot (dm-verity, tamper,
# Secure Boot; about 2.5 minutes), the Packer acceptance test.
# The cluster end to end (a control plane on loopback and three TCG guests,
# about 6 minutes once the control plane is built), the clock test (two
# guests in network labs, about 4), an EC2 and an OpenStack config-2 worker
# joining with their platform's node config (TestPlatformJoin, about 5.5)
# and a verified worker updating itself and rolling back
# (TestVerifiedUpdate, about 14 warm) are `make test-e2e`,
# the last part of `make test`. When NODEBAKE_CI_DEADLINE (unix seconds)
# leaves less than 60 minutes (a fresh 2-core machine without KVM spends
# most of CI's 90 on building the components and the slow tier), it is
# skipped with a message that says so.
# test/cmd/testrun runs them: the whole output goes to build/test-*.log,
# the lines worth reading (and a crashed guest's kernel report) to the
# terminal; a test that failed only because a TCG guest's kernel crashed
# runs once more (printed as RERUN), when every failure of the run was one.
SLOW_ENV := NODEBAKE_SLOW=1 NODEBAKE_REQUIRE_TOOLS=1
TESTRUN := build/testrun

$(TESTRUN): FORCE
	mkdir -p build
	$(GO) build -o $@ ./test/cmd/testrun

FORCE:

test-slow: base $(TESTRUN)
	$(SLOW_ENV) GO=$(GO) $(TESTRUN) -log build/test-slow.log -timeout 45m ./test/boot ./test/cis ./test/clouds ./test/harness ./test/platform ./test/qemu ./test/netlab ./test/secureboot ./test/verified ./builder/uki ./builder/authenticode ./builder/internal/pecoff
	$(MAKE) plugin-acc

test-e2e: base $(TESTRUN)
	@left=$$(( $${NODEBAKE_CI_DEADLINE:-$$(( $$(date +%s) + 7200 ))} - $$(date +%s) )); \
	if [ $$left -lt 3600 ]; then echo "test-e2e: SKIPPED: only $$((left / 60)) minutes of the CI budget left, the cluster tests need 60"; exit 0; fi; \
	mins=$$(( left / 60 - 3 )); [ $$mins -gt 70 ] && mins=70; \
	NODEBAKE_E2E=1 $(SLOW_ENV) GO=$(GO) $(TESTRUN) -log build/test-e2e.log -timeout $${mins}m ./test/e2e

test: deps bin
	NODEBAKE_REQUIRE_TOOLS=1 $(MAKE) test-fast
	$(MAKE) test-slow
	$(MAKE) test-e2e

clean:
	rm -rf bin out
