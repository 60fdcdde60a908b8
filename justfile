# Everyday recipes. `just` is a convenience: every recipe is one plain cargo command.

# List the recipes.
default:
    @just --list

# The main job: a JP and an SG node relaying sample payments (the README's main command).
demo:
    cargo run --release -p kakehashi -- devnet --demo

# Run the tests (the README's test command).
test:
    cargo test --workspace

# Kill -9 either node at random under load, `kills` times (CI runs 10), then check that nothing
# is in doubt, every payment is final, nothing was paid twice, money is conserved and the pair
# audit is clean. Prints the seed; KAKEHASHI_CHAOS_SEED=N replays its kill schedule.
chaos kills="100":
    KAKEHASHI_CHAOS_KILLS={{kills}} cargo test -p kakehashi-e2e --test e2e -- chaos:: --nocapture

# Payments both ways through a fault proxy on each relay link (latency, resets, black hole, cut,
# heal); prints the schedule, the outcomes and how long healing took.
netfault:
    cargo test -p kakehashi-e2e --test e2e -- netfault:: --nocapture

# One source floods JP's listeners (1,000 silent connections on each, 500 idle streams) while a
# client on another address connects and pays; prints handshake p50/p99 and payment latency.
flood *args:
    cargo run --release -p kakehashi-e2e --example flood -- {{args}}

# The three HTML reports (bench, ledger audit, pair audit) from real runs, rendered in headless
# Chromium and checked; `just reports --keep DIR` keeps them and their screenshots in DIR.
reports *args:
    cargo build --release -p kakehashi && bash tests/reports/check.sh {{args}}

# JP, SG and TH nodes on network namespaces of their own (as root): a link cut, a node killed,
# every payment final, pair audits clean; `just hosts --keep DIR` keeps their data and logs.
hosts *args:
    bash tests/hosts/run.sh {{args}}

# Everything CI runs: toolchain, fmt, deny, clippy, fuzz check, tests, docs, interop, reports,
# hosts, conformance.
ci:
    bash .ci/run

# The dependency policy in deny.toml (needs `cargo install cargo-deny --locked`).
deny:
    cargo deny check bans licenses sources

# Type-check the fuzz targets and examples, as CI does (no cargo-fuzz needed).
fuzz-check:
    cargo check --manifest-path fuzz/Cargo.toml --bins --examples --locked

# Format the workspace.
fmt:
    cargo fmt --all

# Lints as CI runs them.
clippy:
    cargo clippy --workspace --all-targets -- -D warnings

# Run both conformance sets from ../shared/conformance.
conformance:
    cargo build --release -p kakehashi && for s in limbo-dev pkits-dev; do ./target/release/kakehashi conformance ../shared/conformance/$s.json --out target/$s.results.json; done

# Regenerate the committed development PKI (changes every key: do it on purpose only).
certs:
    cargo run -p kakehashi -- pki init --out certs --force

# Verify a committed chain under the MRA, as an auditor would.
verify chain="certs/sg/banks/KKHASGS0.pem":
    cargo run -p kakehashi -- cert verify {{chain}} --mra certs/mra.toml --relying JP --purpose payment-signing

# The deterministic simulator over a batch of seeds (violations exit 1 with a replay command).
sim seeds="10000":
    cargo run --release -p kakehashi -- sim --seeds {{seeds}}

# Criterion benches.
bench:
    cargo bench --workspace

# Audit a node's ledger offline.
audit dir:
    cargo run -p kakehashi -- ledger audit --data-dir {{dir}}

# A Python grpcio client against a devnet node (reflection, health, a call, garbage refused).
interop:
    cargo build --release -p kakehashi && bash tests/interop/run.sh

# The relay benchmark: JP→SG payments through two in-process nodes (payments/s, latency, balances).
load payments="2000" concurrency="16":
    cargo run --release -p kakehashi -- bench --payments {{payments}} --concurrency {{concurrency}}

# Replay the sample transaction file against a running devnet (`just demo` or `kakehashi devnet`).
replay file="tests/data/devnet-payments.jsonl":
    cargo run --release -p kakehashi -- replay {{file}}
