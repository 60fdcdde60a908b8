#!/usr/bin/env bash
# Builds the seed inputs of the fuzz targets from committed examples, so the fuzzer starts from
# real inputs instead of from nothing: `verify` from the dev PKI (certs/: real chains, CRLs and
# the real MRA; needs openssl for PEM to DER), `relay_input` from a real payment signed with the
# dev PKI (examples/relay_seeds.rs, built with plain cargo), `replay_line` from
# tests/data/devnet-payments.jsonl (whole and line by line) and `node_config` from the devnet
# node configurations. Output: fuzz/seeds/<target>/*, committed; rerun after `pki init` or a
# change of the wire format.
set -euo pipefail
cd "$(dirname "$0")"
certs=../certs
out=seeds/verify
rm -rf "$out" && mkdir -p "$out"

sep() { printf '#%%#%s' "$1"; }
crl_der() { openssl crl -in "$1" -outform DER; }
# Options section: flags, purpose index (1 = payment-signing), validation time 2027-01-01 as a
# big-endian i64, a second-time offset of one hour as a big-endian i32, then `peer|relying`.
opts() {
    sep O
    printf "\\x$(printf %02x "$1")\\x01"
    printf '\x00\x00\x00\x00\x6b\x36\xec\x80'
    printf '\x00\x00\x0e\x10'
    printf '%s' "$2"
}
mra() {
    sep M; cat "$certs/mra.toml"
    for j in jp sg th; do
        sep F; cat "$certs/$j/root.pem"
        sep F; cat "$certs/$j/crl.pem"
        sep F; cat "$certs/$j/root-crl.pem"
    done
}

seed() { # name, chain file, flags, peer|relying
    {
        sep C; cat "$2"
        sep A; cat "$certs/jp/root.pem" "$certs/sg/root.pem"
        sep R; crl_der "$certs/jp/crl.pem"
        sep R; crl_der "$certs/jp/root-crl.pem"
        opts "$3" "$4"
        mra
    } > "$out/$1"
}

# A good chain per jurisdiction, with revocation checked if available or required, and a node TLS
# chain under the web profile with serverAuth and a peer name.
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
cat "$certs/jp/banks/KKHAJPJ0.pem" "$certs/jp/issuing.pem" > "$tmp"
seed jp-bank "$tmp" 8 "|SG"
seed jp-bank-required-crl "$tmp" 4 "|JP"
cat "$certs/jp/node/tls.pem" "$certs/jp/issuing.pem" > "$tmp"
seed jp-node-tls "$tmp" 11 "localhost|SG"
cat "$certs/sg/banks/KKHASGS0.pem" "$certs/sg/issuing.pem" > "$tmp"
seed sg-bank "$tmp" 8 "|JP"
# Every negative fixture.
for dir in "$certs"/fixtures/*/; do
    name=$(basename "$dir")
    seed "fixture-$name" "$dir/chain.pem" 8 "|SG"
done
ls -l "$out"

# replay_line: the devnet transaction file, and each of its lines alone (short inputs mutate
# faster).
out=seeds/replay_line
rm -rf "$out" && mkdir -p "$out"
cp ../tests/data/devnet-payments.jsonl "$out/devnet-payments.jsonl"
n=0
while IFS= read -r line; do
    n=$((n + 1))
    printf '%s\n' "$line" > "$out/line-$n.jsonl"
done < ../tests/data/devnet-payments.jsonl

# node_config: the devnet nodes' configurations.
out=seeds/node_config
rm -rf "$out" && mkdir -p "$out"
cp ../crates/node/devnet/*.toml "$out/"

# relay_input: signed by the node's own code (a few minutes to build the first time).
cargo run --quiet --example relay_seeds
ls -l seeds/replay_line seeds/node_config seeds/relay_input
