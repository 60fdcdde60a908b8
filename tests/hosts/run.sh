#!/usr/bin/env bash
# Jurisdictions on hosts of their own (issue 15): one network namespace per jurisdiction (JP, SG,
# TH), each joined to a bridge by a veth pair, each node bound to its own address and reached by
# the host name its TLS certificate carries (`<jp|sg|th>-node.kakehashi.test`, resolved through
# the namespace's own /etc/netns/<ns>/hosts, which `ip netns exec` mounts over /etc/hosts). The
# nodes are the committed devnet configurations (crates/node/devnet/*.toml) with their addresses,
# peers and data directories moved; the link between SG and TH runs through the fault proxy
# (tests/examples/fault_proxy.rs: latency, and a black hole on a period) in each direction.
#
# Each jurisdiction's banks play rounds of payments to both other jurisdictions against their
# own node while, mid-run, TH's link is cut (`ip link set … down`) and healed, and JP's node is
# killed with SIGKILL and restarted. Then every round is replayed once more (its UETRs are
# fixed, so nothing is paid twice and what was in doubt is asked about), every payment's status
# is read through `kakehashi status` and must be final (settled, or voided AB05 when the faults
# kept it from its receiver in time), every corridor must have settled payments, the nodes are
# stopped, and `kakehashi ledger pair-audit` must be clean for JP–SG, JP–TH and SG–TH. Exit 0
# when all of that holds.
#
# Needs root (namespaces, veth, a bridge) and iproute2's `ip netns`. Builds what it runs with
# cargo: the release `kakehashi` (`cargo build --release -p kakehashi`, a no-op when CI built it
# already) and the fault proxy example of the e2e tests crate in the dev profile (`cargo build
# -p kakehashi-e2e --example fault_proxy`). KAKEHASHI_BIN and FAULT_PROXY_BIN override either
# (then nothing is built for it). `--keep DIR` keeps the nodes' data, logs and replay results in
# DIR. Everything it creates is named `kkh-*` (namespaces, links, /etc/netns entries) and removed
# on every exit, and any left by an earlier run that was killed is removed at start; one run at
# a time per machine (a second waits for the first).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
target="${CARGO_TARGET_DIR:-$repo/target}"

# --- the plan ----------------------------------------------------------------------------------
codes=(jp sg th)
declare -A upper=([jp]=JP [sg]=SG [th]=TH)
# Addresses from 198.18.0.0/15 (RFC 2544, benchmarking): no real network uses them.
subnet="198.18.77"
declare -A host_ip=([jp]="$subnet.1" [sg]="$subnet.2" [th]="$subnet.3")
# The committed configurations' ports: public, relay, metrics = base, base+1, base+2.
declare -A base_port=([jp]=7100 [sg]=7200 [th]=7300)
declare -A currency=([jp]=JPY [sg]=SGD [th]=THB)
# Banks and their customer accounts (crates/node/devnet/*.toml).
declare -A payers=(
  [jp]="KKHAJPJ0:1001 KKHAJPJ0:1002 KKHBJPJ0:1101"
  [sg]="KKHASGS0:2001 KKHASGS0:2002 KKHBSGS0:2101"
  [th]="KKHATHB0:3001 KKHATHB0:3002"
)
declare -A payees=(
  [jp]="KKHAJPJ0:1001 KKHBJPJ0:1101 KKHBJPJ0:1102"
  [sg]="KKHASGS0:2001 KKHBSGS0:2101 KKHBSGS0:2102"
  [th]="KKHATHB0:3001 KKHATHB0:3002"
)
# Amounts per payment in each sender's currency (a few hundred SGD's worth at most).
declare -A amount=([jp]="12000" [sg]="95.50" [th]="2500.00")
bridge="kkh-br"
# Rounds of payments per jurisdiction, and payments per destination in each round: 3 × 2 × 12
# = 72 payments per jurisdiction, 36 per directed corridor, 216 in all.
rounds=12
per_destination=3
# Pause between rounds, so that the load spans the faults.
round_pause=1
# The fault schedule, in seconds after the load starts.
cut_at=3
heal_after=5
kill_at=12
restart_after=3
# The fault proxies on the SG–TH link.
proxy_latency_ms=40
proxy_loss_every_ms=3000
proxy_loss_ms=400
# Seconds to wait for a node to listen, for the nodes to stop, for in-doubt payments to end.
start_timeout=60
stop_timeout=30
settle_timeout=90

keep=""
while (($#)); do
  case "$1" in
    --keep) keep="${2:?--keep needs a directory}"; shift 2 ;;
    -h | --help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "hosts: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

started_at=$SECONDS
say() { printf '[hosts %3ds] %s\n' "$((SECONDS - started_at))" "$*"; }
fail() {
  echo "hosts: FAILED: $*" >&2
  exit 1
}

# --- preconditions -------------------------------------------------------------------------------
[[ "$(id -u)" == 0 ]] || fail "must run as root: it creates network namespaces, veth pairs and a bridge (try: sudo bash $0)"
command -v ip >/dev/null || fail "the ip command (iproute2) is not installed"
ip netns list >/dev/null 2>&1 || fail "ip netns is not available here (iproute2 without netns support, or no permission to use network namespaces)"

# --- cleanup (on every exit) and stale state ----------------------------------------------------
work="$(mktemp -d -t kakehashi-hosts.XXXXXX)"
# /etc/netns is removed again at the end if this run made it.
made_etc_netns=""
[[ -d /etc/netns ]] || made_etc_netns=yes
declare -A node_pid=()
other_pids=()

stop_pid() {
  local pid="$1" signal="${2:-TERM}"
  [[ -n "$pid" ]] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kill "-$signal" "$pid" 2>/dev/null || true
  for _ in $(seq 1 $((stop_timeout * 10))); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

remove_network() {
  local code ns
  for code in "${codes[@]}"; do
    ns="kkh-$code"
    if ip netns list 2>/dev/null | grep -qw "^$ns"; then
      # Whatever still runs inside (a run killed before its own cleanup): by process id.
      for pid in $(ip netns pids "$ns" 2>/dev/null); do
        kill -KILL "$pid" 2>/dev/null || true
      done
      ip netns delete "$ns" 2>/dev/null || true
    fi
    ip link delete "kkh-$code-h" 2>/dev/null || true
    rm -rf "/etc/netns/$ns"
  done
  ip link delete "$bridge" 2>/dev/null || true
  if [[ -n "$made_etc_netns" ]]; then
    rmdir /etc/netns 2>/dev/null || true
  fi
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  for pid in "${other_pids[@]}"; do
    stop_pid "$pid" KILL
  done
  for code in "${codes[@]}"; do
    stop_pid "${node_pid[$code]:-}" TERM
  done
  remove_network
  if [[ -n "$keep" ]]; then
    mkdir -p "$keep"
    cp -a "$work/." "$keep/"
    echo "hosts: data, logs and results kept in $keep"
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# One run at a time per machine: the names are fixed, and a second run would take the first's
# namespaces for stale ones. Only this shell holds the lock (every background child is started
# with fd 9 closed), so a run killed before its cleanup leaves no holder behind.
lock="/run/lock/kakehashi-hosts.lock"
[[ -d /run/lock ]] || lock="/tmp/kakehashi-hosts.lock"
exec 9>"$lock"
if ! flock -n 9; then
  say "another tests/hosts/run.sh holds $lock; waiting for it (at most 15 minutes)"
  flock -w 900 9 || fail "another tests/hosts/run.sh still holds $lock after 15 minutes"
fi

if ip netns list 2>/dev/null | grep -q '^kkh-' || ip link show "$bridge" >/dev/null 2>&1; then
  say "removing namespaces and links left by an earlier run"
fi
remove_network

# --- binaries -------------------------------------------------------------------------------------
if [[ -n "${KAKEHASHI_BIN:-}" ]]; then
  bin="$KAKEHASHI_BIN"
else
  say "building the release kakehashi (cargo build --release -p kakehashi)"
  cargo build --release --locked --quiet -p kakehashi
  bin="$target/release/kakehashi"
fi
if [[ -n "${FAULT_PROXY_BIN:-}" ]]; then
  proxy_bin="$FAULT_PROXY_BIN"
else
  say "building the fault proxy (cargo build -p kakehashi-e2e --example fault_proxy, dev profile)"
  cargo build --locked --quiet -p kakehashi-e2e --example fault_proxy
  proxy_bin="$target/debug/examples/fault_proxy"
fi
[[ -x "$bin" ]] || fail "$bin is not an executable kakehashi"
[[ -x "$proxy_bin" ]] || fail "$proxy_bin is not an executable fault proxy"
say "kakehashi: $bin"
say "fault proxy: $proxy_bin"

# --- the network ----------------------------------------------------------------------------------
name_of() { echo "$1-node.kakehashi.test"; }

say "network: bridge $bridge, one namespace per jurisdiction on $subnet.0/24"
ip link add "$bridge" type bridge forward_delay 0 stp_state 0 \
  || fail "cannot create the bridge $bridge (ip link add type bridge failed: no bridge support in this kernel?)"
ip link set "$bridge" up
for code in "${codes[@]}"; do
  ns="kkh-$code"
  ip netns add "$ns" || fail "cannot create the network namespace $ns (ip netns add failed)"
  ip link add "kkh-$code-h" type veth peer name eth0 netns "$ns" \
    || fail "cannot create the veth pair kkh-$code-h (ip link add type veth failed: no veth support in this kernel?)"
  ip link set "kkh-$code-h" master "$bridge"
  ip link set "kkh-$code-h" up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "${host_ip[$code]}/24" dev eth0
  ip -n "$ns" link set eth0 up
  # Host names: every node's name at its address; the SG–TH link goes through the fault proxy
  # listening on 127.0.0.2 inside the dialling namespace.
  mkdir -p "/etc/netns/$ns"
  {
    echo "127.0.0.1 localhost"
    for other in "${codes[@]}"; do
      address="${host_ip[$other]}"
      if [[ "$code:$other" == "sg:th" || "$code:$other" == "th:sg" ]]; then
        address="127.0.0.2"
      fi
      echo "$address $(name_of "$other")"
    done
  } >"/etc/netns/$ns/hosts"
  say "  $ns: ${host_ip[$code]} $(name_of "$code") (link kkh-$code-h)"
done

in_ns() {
  local code="$1"
  shift
  ip netns exec "kkh-$code" "$@"
}

# Whether a TCP connection from namespace `code` to host:port opens within 2 s (a cut link
# answers nothing, so the connect is bounded).
can_connect() { # code host port
  in_ns "$1" timeout 2 bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null
}

# --- configurations -------------------------------------------------------------------------------
# The committed file with: absolute certificate and agreement paths, the data directory in the
# work directory, the listeners on the host's address, and each peer by host name.
write_config() {
  local code="$1"
  local dir="$work/$code"
  mkdir -p "$dir"
  awk -v repo="$repo" -v data="$dir/data" -v ip="${host_ip[$code]}" '
    { gsub(/"\.\.\/\.\.\/\.\.\/certs\//, "\"" repo "/certs/") }
    /^\[/ { in_peer = ($0 == "[[peer]]") }
    /^data_dir = / { $0 = "data_dir = \"" data "\"" }
    /^(public|relay|metrics) = "127\.0\.0\.1:/ { sub(/127\.0\.0\.1/, ip) }
    in_peer && /^jurisdiction = "[A-Z][A-Z]"/ {
      name = tolower(substr($0, index($0, "\"") + 1, 2)) "-node.kakehashi.test"
    }
    in_peer && /^relay = "https:\/\/127\.0\.0\.1:/ { sub(/127\.0\.0\.1/, name) }
    in_peer && /^server_name = / { $0 = "server_name = \"" name "\"" }
    { print }
  ' "crates/node/devnet/$code.toml" >"$dir/node.toml"
  [[ $(grep -cE '^relay = "https://[a-z]{2}-node\.kakehashi\.test:[0-9]+"' "$dir/node.toml") == 2 &&
    $(grep -cE '^server_name = "[a-z]{2}-node\.kakehashi\.test"' "$dir/node.toml") == 2 ]] \
    || fail "${upper[$code]}: crates/node/devnet/$code.toml did not give two peers by host name"
}
for code in "${codes[@]}"; do
  write_config "$code"
done

# --- nodes and proxies ----------------------------------------------------------------------------
start_node() {
  local code="$1"
  local log="$work/$code/node.log"
  echo "--- start $(date -u +%H:%M:%S)" >>"$log"
  # `ip netns exec` executes the command in place: $! is the node's own process.
  ip netns exec "kkh-$code" "$bin" node run --config "$work/$code/node.toml" --log info \
    >>"$log" 2>&1 9>&- &
  node_pid[$code]=$!
}

wait_listening() {
  local code="$1"
  local deadline=$((SECONDS + start_timeout))
  while ! can_connect "$code" "$(name_of "$code")" "${base_port[$code]}"; do
    if ! kill -0 "${node_pid[$code]}" 2>/dev/null; then
      tail -n 30 "$work/$code/node.log" >&2
      fail "the ${upper[$code]} node exited before it listened (log above)"
    fi
    ((SECONDS < deadline)) || fail "the ${upper[$code]} node did not listen on $(name_of "$code"):${base_port[$code]} within ${start_timeout} s"
    sleep 0.2
  done
}

start_proxy() { # in which namespace, towards which node
  local from="$1" to="$2"
  local port=$((base_port[$to] + 1)) log="$work/proxy-$from-$to.log"
  : >"$log"
  ip netns exec "kkh-$from" "$proxy_bin" --listen "127.0.0.2:$port" \
    --upstream "${host_ip[$to]}:$port" --latency-ms "$proxy_latency_ms" \
    --loss-every-ms "$proxy_loss_every_ms" --loss-ms "$proxy_loss_ms" >"$log" 2>&1 9>&- &
  other_pids+=("$!")
  local deadline=$((SECONDS + start_timeout))
  until grep -q "listening on" "$log"; do
    kill -0 "$!" 2>/dev/null || { cat "$log" >&2; fail "the fault proxy $from→$to exited"; }
    ((SECONDS < deadline)) || fail "the fault proxy $from→$to did not start"
    sleep 0.1
  done
  say "  proxy in kkh-$from: $(head -n 1 "$log" | sed 's/^fault_proxy: //')"
}

say "starting the three nodes, each on its own host"
for code in "${codes[@]}"; do
  start_node "$code"
done
for code in "${codes[@]}"; do
  wait_listening "$code"
  say "  ${upper[$code]} node listening at https://$(name_of "$code"):${base_port[$code]} (pid ${node_pid[$code]})"
done
say "fault proxies on the SG–TH link (both directions)"
start_proxy sg th
start_proxy th sg
for from in "${codes[@]}"; do
  for to in "${codes[@]}"; do
    [[ "$from" == "$to" ]] && continue
    can_connect "$from" "$(name_of "$to")" $((base_port[$to] + 1)) \
      || fail "kkh-$from cannot reach $(name_of "$to"):$((base_port[$to] + 1))"
  done
done
say "every host reaches every other relay listener by name"

# --- the replay files -----------------------------------------------------------------------------
# Round r of jurisdiction j: per_destination payments to each other jurisdiction, from the
# jurisdiction's banks in turn. The end-to-end id names the debtor bank, the round and the line.
# No line states an expectation: a payment the faults left in doubt may end either way (settled,
# or voided when the receiver fenced it, AB05); the checks below judge the outcomes.
for code in "${codes[@]}"; do
  read -r -a from_list <<<"${payers[$code]}"
  for r in $(seq -w 1 "$rounds"); do
    file="$work/$code/round-$r.jsonl"
    : >"$file"
    n=0
    for dest in "${codes[@]}"; do
      [[ "$dest" == "$code" ]] && continue
      read -r -a to_list <<<"${payees[$dest]}"
      for i in $(seq 1 "$per_destination"); do
        from="${from_list[$(((n + i) % ${#from_list[@]}))]}"
        to="${to_list[$(((n + i) % ${#to_list[@]}))]}"
        n=$((n + 1))
        printf '{"debtor_agent":"%s","debtor_account":"%s","creditor_agent":"%s","creditor_account":"%s","amount":{"currency":"%s","value":"%s"},"end_to_end_id":"H-%s-%s-%02d","remittance_information":"hosts test round %s"}\n' \
          "${from%%:*}" "${from##*:}" "${to%%:*}" "${to##*:}" "${currency[$code]}" \
          "${amount[$code]}" "${from%%:*}" "$r" "$n" "$r" >>"$file"
      done
    done
  done
done
say "replay files: $rounds rounds × $((per_destination * 2)) payments per jurisdiction, $((rounds * per_destination * 2 * 3)) payments on six directed corridors"

# UETRs derive from each line's content and the seed: this run's own, so that nothing of another
# run (one killed before its cleanup, say) can pass for one of this run's payments; the second
# pass uses the same seed, hence the same UETRs.
run_seed="$(basename "$work")"

replay() { # code file out [extra args]
  local code="$1" file="$2" out="$3"
  shift 3
  in_ns "$code" "$bin" replay "$file" \
    --node "${upper[$code]}=https://$(name_of "$code"):${base_port[$code]}" \
    --mra "$repo/certs/mra.toml" --out "$out" --concurrency 3 --pending-wait 3 \
    --seed "$run_seed" "$@"
}

load() { # one jurisdiction's rounds, one after another
  local code="$1" r status
  for r in $(seq -w 1 "$rounds"); do
    # The script itself ($$) was killed without its cleanup: stop here.
    kill -0 "$$" 2>/dev/null || return 0
    status=0
    replay "$code" "$work/$code/round-$r.jsonl" "$work/$code/round-$r.first.jsonl" \
      >"$work/$code/round-$r.first.log" 2>&1 || status=$?
    echo "$r $status" >>"$work/$code/first-pass.status"
    sleep "$round_pause"
  done
}

# --- the run with its faults ----------------------------------------------------------------------
say "load: each jurisdiction's banks pay both others through their own node, round by round"
load_pids=()
for code in "${codes[@]}"; do
  load "$code" 9>&- &
  load_pids+=("$!")
  other_pids+=("$!")
done
load_start=$SECONDS
wait_until() { # this many seconds after the load started
  while ((SECONDS - load_start < $1)); do sleep 0.2; done
}

wait_until "$cut_at"
say "FAULT: TH's link cut (ip link set kkh-th-h down)"
ip link set kkh-th-h down
if can_connect jp "$(name_of th)" 7301; then
  fail "TH's link is down, yet JP still reaches TH's relay"
fi
wait_until $((cut_at + heal_after))
ip link set kkh-th-h up
say "HEALED: TH's link back up after ${heal_after} s"

wait_until "$kill_at"
say "FAULT: JP's node killed with SIGKILL (pid ${node_pid[jp]})"
kill -KILL "${node_pid[jp]}"
wait "${node_pid[jp]}" 2>/dev/null || true
wait_until $((kill_at + restart_after))
start_node jp
wait_listening jp
say "RESTARTED: JP's node after ${restart_after} s (pid ${node_pid[jp]})"

for pid in "${load_pids[@]}"; do
  wait "$pid" || true
done
say "load done in $((SECONDS - load_start)) s"

# What the first pass saw, per corridor: the faults show up as payments in doubt when replay
# stopped waiting (PDNG), payments already voided (RJCT), and rounds whose replay could not
# reach its own node at all (exit 2: nothing sent; the second pass sends them).
for code in "${codes[@]}"; do
  outcomes=$(cat "$work/$code"/round-*.first.jsonl 2>/dev/null \
    | sed -n 's/.*"route":"\([^"]*\)","status":"\([^"]*\)".*/\1 \2/p' | sort | uniq -c \
    | awk '{ printf "%s%s %s %s", (NR > 1 ? ", " : ""), $2, $3, $1 }')
  in_doubt=$(awk '$2 == 3 { printf "%s%s", (n++ ? " " : ""), $1 }' "$work/$code/first-pass.status")
  unreachable=$(awk '$2 == 2 { printf "%s%s", (n++ ? " " : ""), $1 }' "$work/$code/first-pass.status")
  other=$(awk '$2 != 0 && $2 != 2 && $2 != 3 { printf "%s%s (exit %s)", (n++ ? ", " : ""), $1, $2 }' "$work/$code/first-pass.status")
  say "  ${upper[$code]} first pass: $outcomes"
  say "     rounds with payments in doubt: ${in_doubt:-none}; rounds that could not reach the node: ${unreachable:-none}${other:+; other: $other}"
done

# --- every payment final ------------------------------------------------------------------------
# Each round again: settled payments are answered DUPL (replay reports the earlier outcome),
# payments still in doubt are asked about until they end, payments never sent are sent now.
say "second pass: every round replayed (fixed UETRs: nothing is paid twice)"
settle_deadline=$((SECONDS + settle_timeout))
for code in "${codes[@]}"; do
  for r in $(seq -w 1 "$rounds"); do
    while true; do
      status=0
      replay "$code" "$work/$code/round-$r.jsonl" "$work/$code/round-$r.final.jsonl" \
        >"$work/$code/round-$r.final.log" 2>&1 || status=$?
      ((status == 0)) && break
      if ((status != 3)) || ((SECONDS >= settle_deadline)); then
        cat "$work/$code/round-$r.final.log" >&2
        fail "${upper[$code]} round $r: kakehashi replay exited $status on the second pass (output above)"
      fi
      sleep 1
    done
  done
done

say "reading every payment's status through kakehashi status"
status_file="$work/statuses.txt"
# One reader per jurisdiction, at the same time.
read_statuses() {
  local code="$1"
  # uetr, route and the debtor bank (from the end-to-end id H-<BIC>-<round>-<n>)
  sed -n 's/.*"uetr":"\([^"]*\)","end_to_end_id":"H-\([A-Z0-9]*\)-[^"]*","route":"\([^"]*\)".*/\1 \2 \3/p' \
    "$work/$code"/round-*.final.jsonl | while read -r uetr bic route; do
    answer=0
    in_ns "$code" "$bin" status "$uetr" --node "https://$(name_of "$code"):${base_port[$code]}" \
      --mra "$repo/certs/mra.toml" --jurisdiction "${upper[$code]}" --identity "$bic" --json \
      >"$work/$code/status.out" 2>&1 || answer=$?
    reason=$(sed -n 's/^ *"reason_code": "\([A-Z0-9]*\)".*/\1/p' "$work/$code/status.out")
    case "$answer" in
      0) echo "$route ACSC $uetr" ;;
      1) echo "$route RJCT-${reason:-none} $uetr" ;;
      3) echo "$route PDNG $uetr" ;;
      *) cat "$work/$code/status.out" >&2; echo "$route ERROR $uetr" ;;
    esac
  done >"$work/$code/statuses.txt"
}
readers=()
for code in "${codes[@]}"; do
  read_statuses "$code" 9>&- &
  readers+=("$!")
done
for pid in "${readers[@]}"; do
  wait "$pid"
done
cat "$work"/*/statuses.txt >"$status_file"
total=$(wc -l <"$status_file")
expected=$((rounds * per_destination * 2 * 3))
((total == expected)) || fail "read $total statuses, expected $expected"
while read -r count route state; do
  say "  $route: $count $state"
done < <(awk '{ print $1, $2 }' "$status_file" | sort | uniq -c)
if grep -qE ' (PDNG|ERROR) ' "$status_file"; then
  grep -E ' (PDNG|ERROR) ' "$status_file" >&2
  fail "payments not final (listed above)"
fi
# The faults may void a payment in doubt that never reached its receiver (AB05: the receiver
# fenced it); any other refusal of these funded, well-formed payments is a defect.
if grep -vE ' (ACSC|RJCT-AB05) ' "$status_file" | grep -q .; then
  grep -vE ' (ACSC|RJCT-AB05) ' "$status_file" >&2
  fail "payments refused for another reason than a fault's timeout (listed above)"
fi
for from in "${codes[@]}"; do
  for to in "${codes[@]}"; do
    [[ "$from" == "$to" ]] && continue
    grep -q "^${upper[$from]}→${upper[$to]} ACSC " "$status_file" \
      || fail "no payment settled on the corridor ${upper[$from]}→${upper[$to]}"
  done
done
say "all $total payments are final; every corridor settled payments"

# --- the books ------------------------------------------------------------------------------------
say "stopping the nodes (SIGTERM: each drains and closes its books)"
for code in "${codes[@]}"; do
  stop_pid "${node_pid[$code]}" TERM
  node_pid[$code]=""
done
# The proxies print their counters as they stop; the load's subshells have ended already.
for pid in "${other_pids[@]}"; do
  stop_pid "$pid" TERM
done
other_pids=()
for proxy_log in "$work"/proxy-*.log; do
  say "  fault $(basename "$proxy_log" .log | tr - ' '): $(grep -c 'loss window' "$proxy_log") loss windows; $(tail -n 1 "$proxy_log" | sed 's/^fault_proxy: //')"
done

audit_status=0
for pair in "jp sg" "jp th" "sg th"; do
  read -r a b <<<"$pair"
  out="$work/pair-audit-$a-$b.txt"
  status=0
  "$bin" ledger pair-audit --config "$work/$a/node.toml" --config "$work/$b/node.toml" \
    >"$out" 2>&1 || status=$?
  if ((status == 0)); then
    say "pair audit ${upper[$a]}–${upper[$b]}: $(grep -m1 '^result:' "$out" | sed 's/^result: //')"
    grep -E '^  (ledger audit|[A-Z]{2} → [A-Z]{2}) ' "$out" | sed 's/^ */    /'
  else
    cat "$out" >&2
    say "pair audit ${upper[$a]}–${upper[$b]}: exit $status (report above)"
    audit_status=1
  fi
done
((audit_status == 0)) || fail "a pair audit found discrepancies"

# What the faults looked like from the nodes: payments in doubt as senders, and how many their
# recovery resolved (the logs carry ANSI colours; stripped first).
for code in "${codes[@]}"; do
  log_text=$(sed 's/\x1b\[[0-9;]*m//g' "$work/$code/node.log")
  say "  ${upper[$code]} node: $(grep -c '^--- start' <<<"$log_text") start(s); \
$(grep -c 'the payment is in doubt' <<<"$log_text" || true) payment(s) went in doubt as sender; \
$(grep -c 'in-doubt payment resolved' <<<"$log_text" || true) resolved by recovery"
done
say "PASSED in $((SECONDS - started_at)) s: $total payments final on six corridors, pair audits clean"
