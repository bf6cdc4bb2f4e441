# The project's commands. Each installs what it needs (scripts/setup) on a fresh Debian machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help
export npm_config_update_notifier := false

.PHONY: help setup build check test test-unit test-integration test-powercut e2e-containers e2e-portal e2e-console demo bench bench-portal powercut image e2e clean

help:
	@echo "make demo   - build a release, simulate an appliance, update A->B and roll back a broken release"
	@echo "make test   - every test tier; ends with 'N passed, M failed[, K skipped]'"
	@echo "make check  - typecheck + lint"
	@echo "make bench  - full install vs RAUC and the limit, delta bytes vs casync, peak RSS (JSON last line)"
	@echo "make bench-portal - 2,000 connections on the portal for 60 s while an update runs (JSON last line)"
	@echo "make powercut N=1000 - the power-cut torture run (make test runs 100 cuts of it)"
	@echo "make image  - the appliance's disks (raw, qcow2, OVA) and release images in out/ (root)"
	@echo "make e2e    - boots the lab image in QEMU: OVF first boot, update, rollback, power cut, recovery"

# What the tests and the simulated appliance run (the apt groups of scripts/setup); make build
# and make check need only npm's packages.
TOOLS := base containers diagnostics portal console image-tests

setup:
	@scripts/setup $(TOOLS)

build:
	@scripts/setup npm
	@npx tsc -b core agent firstboot image recovery console-tui portal
	@node scripts/bundle.mjs

check:
	@scripts/setup npm
	@npx tsc -b core agent firstboot image recovery console-tui portal
	@node scripts/bundle.mjs
	@npx tsc -p tsconfig.tools.json
	@npx biome check .
	@node scripts/check-pure.mjs
	@node scripts/check-boundaries.mjs

test: setup build
	@node scripts/test.mjs

test-unit: setup build
	@node scripts/test.mjs unit

test-integration: setup build
	@node scripts/test.mjs integration

test-powercut: setup build
	@node scripts/test.mjs powercut

# The container-upgrade tests alone (real Podman); they are part of make test too.
e2e-containers: setup build
	@node scripts/test.mjs containers

# The local portal's end-to-end tests alone (headless Chromium); they are part of make test too.
e2e-portal: setup build
	@node scripts/test.mjs portal

# The local console's end-to-end tests alone (tmux, TERM=linux, 80x25); they are part of make test too.
e2e-console: setup build
	@node scripts/test.mjs console

demo: setup build
	@scripts/demo

# Full install (agent vs RAUC 1.8 vs the machine's limit), delta bytes (agent vs casync), peak RSS.
bench: setup build
	@scripts/setup bench
	@npx tsx scripts/bench.ts

# The portal under a flood from the LAN while an update runs: req/s, p99, errors, both peak RSS.
bench-portal: setup build
	@npx tsx scripts/bench-portal.ts

# The power-cut torture run: N cuts (default 100) over every scenario; SEED reproduces a run.
N ?= 100
powercut: setup build
	@npx tsx test/powercut/run.ts --cuts $(N) $(if $(SEED),--seed $(SEED))

# The appliance's images (debootstrap, GRUB, OVA): out/clgw-<v>.{img,qcow2,ova}, boot/root images.
# VERSION, KEYS (release keys and support-ca.pub, clgw-release keys; without it: development keys
# and support CA, a loud notice and -devkeys in every output's name), RELEASE_TREE.
VERSION ?= 1.0.0
image: build
	@scripts/setup image
	@node image/dist/build/cli.js --out out --version $(VERSION) $(if $(KEYS),--keys $(KEYS)) $(if $(RELEASE_TREE),--release-tree $(RELEASE_TREE))

# The images proven in QEMU (TCG): ends with "e2e: passed k/n steps in s s". .ci/run runs it.
e2e: build
	@scripts/setup image containers
	@npx tsx test/qemu/e2e.ts

clean:
	rm -rf .sim .cache out core/dist agent/dist firstboot/dist console-tui/dist portal/dist recovery/dist image/dist *.tsbuildinfo */tsconfig.tsbuildinfo
