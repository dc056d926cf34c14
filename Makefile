# proxy-injector — see README.md
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

BENCH_ARGS ?=

.PHONY: deny fuzz load-faults bench bench-long bench-apiserver build release test test-steps tests unit e2e controlplane up down demo certs run fmt fmt-check lint clean deploy-certs image image-check e2e-kind

build:
	$(CARGO) build

release:
	$(CARGO) build --release

## Everything CI runs: formatting, lints (warnings are errors), dependency policy, unit + golden +
## property + HTTPS + fault + e2e tests, the kind e2e (skipped without docker/kind) and the
## container image check (skipped without podman). Ends with a summary of what ran, passed and
## was skipped (scripts/ci-step.sh; also in target/ci-summary.txt).
CI_SUMMARY_FILE := $(CURDIR)/target/ci-summary.txt
test:
	@mkdir -p target && : > $(CI_SUMMARY_FILE)
	@CI_SUMMARY=$(CI_SUMMARY_FILE) $(MAKE) --no-print-directory test-steps; status=$$?; \
	  CI_SUMMARY=$(CI_SUMMARY_FILE) scripts/ci-step.sh --report $$status; exit $$status

TEST_SUITES = $(basename $(notdir $(wildcard tests/*.rs tools/tests/*.rs)))
test-steps:
	@scripts/ci-step.sh "cargo fmt --check" $(MAKE) --no-print-directory fmt-check
	@scripts/ci-step.sh "cargo clippy --workspace --all-targets -D warnings" $(MAKE) --no-print-directory lint
	@scripts/ci-step.sh "cargo deny (licenses, bans, sources)" $(MAKE) --no-print-directory deny
	@scripts/ci-step.sh "control plane binaries (build or cache)" $(MAKE) --no-print-directory controlplane
	@scripts/ci-step.sh "cargo test --workspace: unit + $(TEST_SUITES)" $(MAKE) --no-print-directory tests
	@scripts/ci-step.sh "kind e2e (scripts/e2e-kind.sh)" scripts/e2e-kind.sh
	@scripts/ci-step.sh "image check (scripts/image.sh check)" scripts/image.sh check

## The cargo tests of make test (both packages: the server and tools/).
tests:
	$(CARGO) test --workspace --lib --bins --tests -- --test-threads=2

## Only the fast tests (no control plane).
unit:
	$(CARGO) test --lib --test golden --test https --test warnings --test cli

## Only the tests through the real kube-apiserver.
e2e: controlplane
	$(CARGO) test --test e2e_controlplane

## Build (or reuse from ~/.cache/proxy-injector) etcd, kube-apiserver, kube-controller-manager, kubectl.
controlplane:
	@tests/controlplane/build.sh >/dev/null

up:
	tests/controlplane/cluster.sh up

down:
	scripts/demo.sh down

## The main job: control plane + injector + webhook + annotated namespace + injected pod.
demo:
	scripts/demo.sh

certs: build
	$(CARGO) run --quiet -- certs --out certs/out --dns localhost --ip 127.0.0.1

run: certs
	$(CARGO) run -- serve --listen 127.0.0.1:8443 --tls-cert certs/out/tls.crt --tls-key certs/out/tls.key

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all --check

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean

KUBECTL ?= kubectl
## In-cluster certificates: TLS Secret + caBundle of the webhook configuration (after kubectl apply -k manifests/).
deploy-certs: build
	$(CARGO) run --quiet -- certs --out certs/out --kubernetes --namespace proxy-injector
	$(KUBECTL) apply -f certs/out/secret.yaml
	$(KUBECTL) patch mutatingwebhookconfiguration proxy-injector --type=json --patch-file certs/out/webhook-patch.json
	$(KUBECTL) patch validatingwebhookconfiguration proxy-injector-warnings --type=json --patch-file certs/out/webhook-patch.json

## Container image proxy-injector:0.1.0 with podman: FROM scratch + the statically linked binary,
## built first from the files git tracks (scripts/static-build.sh; no base image, no registry).
image:
	scripts/image.sh build

## The image proven (part of make test): built, inspected, its binary run under chroot
## (--version, certs, serve over TLS). Skipped with a message where podman is missing.
image-check:
	scripts/image.sh check

## kind cluster end to end (skipped with a message where docker or kind is missing; E2E_KIND=required fails instead).
e2e-kind:
	scripts/e2e-kind.sh

## Benchmarks (not tests; the kit is the tools/ package): criterion micro-benchmarks as ratios
## to a parse-only floor, then the injector against the constant-answer floor server under load
## (127.0.0.1, bounded runs). loadgen starts the proxy-injector and floor built next to it.
bench:
	$(CARGO) bench -p proxy-injector-tools --bench micro -- --warm-up-time 1 --measurement-time 5
	python3 scripts/criterion-ratios.py
	$(CARGO) build --release --workspace --bins
	$(CARGO) run --release -p proxy-injector-tools --bin loadgen -- $(BENCH_ARGS)

## One million requests of the mixed corpus: RSS must stay flat.
bench-long:
	$(CARGO) build --release --workspace --bins
	$(CARGO) run --release -p proxy-injector-tools --bin loadgen -- --corpus mixed --requests 1000000 --max-seconds 300 --rate 0

## Through the real kube-apiserver: 10,000 namespaces in the reflector (RSS), and the latency
## the webhook adds to pod creation (injected vs plain namespace).
bench-apiserver: controlplane
	$(CARGO) bench -p proxy-injector --bench apiserver

## Dependency policy (deny.toml): licenses, banned crates (no OpenSSL: rustls only), sources
## (crates.io only). Advisories need the advisory database from the network: not checked here.
CARGO_DENY_VERSION ?= 0.20.2
deny:
	@command -v cargo-deny >/dev/null || { echo "installing cargo-deny $(CARGO_DENY_VERSION) (a few minutes, once)"; \
	  $(CARGO) install cargo-deny --locked --version $(CARGO_DENY_VERSION); }
	$(CARGO) deny --log-level error check licenses bans sources

## Fuzzing (libFuzzer via cargo fuzz, nightly): the whole request path and annotation parsing,
## seeded from tests/fixtures, FUZZ_SECONDS each (default 600). Crashes land in fuzz/artifacts/.
FUZZ_SECONDS ?= 600
fuzz:
	@rustup run nightly rustc --version >/dev/null 2>&1 || { echo "make fuzz needs a nightly toolchain: rustup toolchain install nightly"; exit 1; }
	@command -v cargo-fuzz >/dev/null || { echo "installing cargo-fuzz (once)"; $(CARGO) install cargo-fuzz --locked; }
	$(CARGO) run --quiet --example fuzz_seed -- tests/fixtures fuzz/corpus
	cd fuzz && for t in review annotations; do \
	  echo "== fuzzing $$t for $(FUZZ_SECONDS)s"; \
	  cargo +nightly fuzz run -O $$t corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -print_final_stats=1 || exit 1; \
	done

## Long fault runs under load (127.0.0.1, bounded): certificate rotation and a bad certificate,
## and SIGTERM, each LOAD_SECONDS (default 60); prints requests and failures.
LOAD_SECONDS ?= 60
load-faults:
	RELIABILITY_LOAD_SECONDS=$(LOAD_SECONDS) $(CARGO) test --release --test reliability -- \
	  --nocapture --test-threads=1 under_load
