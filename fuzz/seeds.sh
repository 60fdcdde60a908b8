#!/usr/bin/env bash
# Builds the seed inputs of the `verify` fuzz target from the committed dev PKI (certs/), so the
# fuzzer starts from real chains, CRLs and the real MRA instead of from nothing. Needs openssl
# (PEM to DER for CRLs). Output: fuzz/seeds/verify/*, committed; rerun after `pki init`.
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
