#!/usr/bin/env bash
# The HTML reports, made from real runs and rendered in a real browser: a short `kakehashi
# bench --report`, then `kakehashi devnet --demo` on free ports and `kakehashi ledger audit
# --report` of its JP ledger and `kakehashi ledger pair-audit --report` of the pair. Each report
# is rendered in headless Chromium (the rendered DOM and a screenshot), and
# tests/reports/check_dom.py checks that the charts and the key figures, read from the same
# command's --json output, are on the rendered page. Exit 0 when every check passes.
#
# Needs the release binary (cargo build --release -p kakehashi; CARGO_TARGET_DIR is honoured,
# KAKEHASHI_BIN overrides the path), python3 and Debian's chromium (.ci/run installs it where
# missing; CHROMIUM overrides the command).
#
#   bash tests/reports/check.sh [--keep DIR]
#
# --keep DIR keeps the reports, their rendered DOM and 1200-px-wide screenshots in DIR
# (docs/report-*.png are made this way); without it they go to a temporary directory that is
# removed at exit.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
target="${CARGO_TARGET_DIR:-$repo/target}"
bin="${KAKEHASHI_BIN:-$target/release/kakehashi}"
# Payments of the bench run: enough for a throughput curve, a few seconds on two cores.
bench_payments=1500
# Seconds one Chromium run may take (a cold start on a busy machine takes a few).
browser_timeout_secs=120
# Port-choice attempts for the devnet: another process may take a port between the choice
# and the bind.
start_attempts=3
# The screenshots' width, and for each report a height that holds its top (verdict,
# figures, checks, charts).
shot_width=1200
shot_height() {
  case "$1" in
    audit) echo 1450 ;;
    *) echo 2000 ;;
  esac
}

fail() {
  echo "reports: $*" >&2
  exit 1
}

keep=""
while (($#)); do
  case "$1" in
    --keep) keep="${2:?--keep needs a directory}"; shift 2 ;;
    *) fail "unknown argument $1 (usage: check.sh [--keep DIR])" ;;
  esac
done

[[ -x "$bin" ]] || fail "$bin not found; build it with: cargo build --release -p kakehashi"
command -v python3 >/dev/null || fail "python3 is not installed"
browser="${CHROMIUM:-}"
if [[ -z "$browser" ]]; then
  browser="$(command -v chromium || command -v chromium-browser || true)"
fi
[[ -n "$browser" ]] || fail "chromium is not installed (Debian: apt-get install chromium)"

work="$(mktemp -d)"
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
if [[ -n "$keep" ]]; then
  mkdir -p "$keep"
  out="$(cd "$keep" && pwd)"
else
  out="$work/out"
  mkdir -p "$out"
fi

# --- the runs ------------------------------------------------------------------------------
echo "reports: kakehashi bench --payments $bench_payments --report"
"$bin" bench --payments "$bench_payments" --concurrency 16 --json \
  --report "$out/bench.html" >"$out/bench.json" 2>"$work/bench.err" \
  || { cat "$work/bench.err" >&2; fail "kakehashi bench failed"; }

# shellcheck source=tests/scripts/ports.sh
. "$repo/tests/scripts/ports.sh"

devnet="$work/devnet"
ran=""
for attempt in $(seq 1 "$start_attempts"); do
  base="$(free_base_port)" || fail "found no free base port"
  rm -rf "$devnet"
  echo "reports: kakehashi devnet --demo --base-port $base"
  if "$bin" devnet --demo --data-dir "$devnet" --base-port "$base" >"$work/devnet.log" 2>&1; then
    ran="yes"
    break
  fi
  if grep -q "already in use" "$work/devnet.log"; then
    echo "reports: attempt $attempt: a port near $base was taken, trying others" >&2
    continue
  fi
  cat "$work/devnet.log" >&2
  fail "kakehashi devnet --demo failed"
done
[[ -n "$ran" ]] || { cat "$work/devnet.log" >&2; fail "the devnet did not run in $start_attempts attempts"; }

echo "reports: kakehashi ledger audit --report"
"$bin" ledger audit --data-dir "$devnet/jp/ledger" --require-signed-head --json \
  --report "$out/audit.html" >"$out/audit.json" \
  || fail "kakehashi ledger audit of the devnet's JP ledger did not come out clean"

echo "reports: kakehashi ledger pair-audit --report"
"$bin" ledger pair-audit --config crates/node/devnet/jp.toml --config crates/node/devnet/sg.toml \
  --devnet-data-dir "$devnet" --json --report "$out/pair-audit.html" >"$out/pair-audit.json" \
  || fail "kakehashi ledger pair-audit of the devnet did not find the pair agreeing"

# --- rendering -----------------------------------------------------------------------------
# A fresh profile per run, and nothing that reaches the network on its own.
render() {
  local page="$1" mode="$2" profile
  profile="$(mktemp -d "$work/profile.XXXXXX")"
  timeout "$browser_timeout_secs" "$browser" --headless --no-sandbox --disable-gpu \
    --disable-quic --no-first-run --disable-background-networking --disable-component-update \
    --disable-sync --hide-scrollbars --user-data-dir="$profile" "${@:3}" "$mode" \
    "file://$page" 2>>"$work/chromium.log"
}

for report in bench audit pair-audit; do
  echo "reports: rendering $report.html in headless Chromium"
  render "$out/$report.html" --dump-dom >"$out/$report.dom.html" \
    || { tail -n 20 "$work/chromium.log" >&2; fail "chromium could not render $report.html"; }
  render "$out/$report.html" --screenshot="$out/report-$report.png" \
    --window-size="$shot_width,$(shot_height "$report")" >/dev/null \
    || { tail -n 20 "$work/chromium.log" >&2; fail "chromium could not screenshot $report.html"; }
done

python3 tests/reports/check_dom.py "$out"
echo "reports: the three reports render in headless Chromium with their charts and figures"
