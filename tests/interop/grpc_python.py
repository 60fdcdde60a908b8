#!/usr/bin/env python3
"""Interoperability check of a kakehashi node's public listener with gRPC core (Python grpcio).

gRPC core uses BoringSSL, whose TLS stack offers no Ed25519 signature scheme; this check is
what proves that a node's TLS identity (ECDSA P-256 under the Ed25519 issuing CA, see
certs/README.md) works for every client built on gRPC core, not only for rustls ones.

Checks, in order, against ADDRESS with the CA bundle (for the devnet: certs/jp/root.pem):

1. server reflection v1alpha lists kakehashi.v1.Payments;
2. GetBalances without a client certificate is refused with UNAUTHENTICATED;
3. GetBalances, called with message classes built from the reflected descriptors (no
   generated stubs) over a connection presenting the bank's participant-TLS certificate
   (--identity, --identity-key; P-256, which BoringSSL offers), returns exactly that bank's
   accounts of the node's configuration (--config, --bic);
4. another bank's account asked by id over that connection is NOT_FOUND;
5. grpc.health.v1.Health/Check says SERVING for kakehashi.v1.Payments;
6. garbage bytes sent to GetQuote are refused with INVALID_ARGUMENT and reason FF01.

Exit status: 0 when every check passes, 1 when one fails (the message says which and why),
2 for bad arguments.

    python3 tests/interop/grpc_python.py 127.0.0.1:7100 certs/jp/root.pem \
        --config crates/node/devnet/jp.toml --bic KKHAJPJ0 \
        --identity certs/jp/banks/KKHAJPJ0-tls.pem \
        --identity-key certs/jp/banks/KKHAJPJ0-tls.key.pem
"""

import argparse
import sys
import tomllib

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

PAYMENTS = "kakehashi.v1.Payments"

# Seconds allowed for the connection (TCP + TLS handshake) and for each call; a devnet node
# answers in milliseconds, so these only turn a hang into a clear failure.
CONNECT_TIMEOUT_SECS = 10
CALL_TIMEOUT_SECS = 10

# Bytes that are no protobuf message: 0xff starts a field with an invalid wire type (7).
GARBAGE = b"\xff\xff\xff"

# The ISO 20022-style reason a node gives for a malformed request (DESIGN.md, reason codes).
MALFORMED_REASON = "FF01"

# Largest CA bundle read: a bundle of a few roots is a few KiB.
CA_BUNDLE_BYTES_MAX = 1024 * 1024


class CheckFailed(Exception):
    """One of the checks did not hold; the message says which and why."""


def rpc_text(error):
    """The status code and details of a failed call, for a failure message."""
    if isinstance(error, grpc.RpcError):
        return f"{error.code().name}: {error.details()}"
    return str(error)


def read_pem(path, what):
    try:
        with open(path, "rb") as f:
            data = f.read(CA_BUNDLE_BYTES_MAX + 1)
    except OSError as e:
        raise CheckFailed(f"cannot read the {what} {path}: {e}") from e
    if len(data) > CA_BUNDLE_BYTES_MAX:
        raise CheckFailed(f"the {what} {path} is larger than {CA_BUNDLE_BYTES_MAX} bytes")
    return data


def connect(address, ca_path, server_name, identity=None):
    """A TLS channel to ADDRESS; `identity` is (chain path, key path) to present, or None."""
    ca = read_pem(ca_path, "CA bundle")
    chain = key = None
    if identity:
        chain = read_pem(identity[0], "client certificate chain")
        key = read_pem(identity[1], "client key")
    options = []
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=chain
    )
    channel = grpc.secure_channel(address, credentials, options=options)
    try:
        grpc.channel_ready_future(channel).result(timeout=CONNECT_TIMEOUT_SECS)
    except grpc.FutureTimeoutError as e:
        raise CheckFailed(
            f"no TLS connection to {address} within {CONNECT_TIMEOUT_SECS} s; is the node "
            "running, and does its certificate chain to the CA bundle? (a node log line "
            "'peer is incompatible: NoSignatureSchemesInCommon' means its TLS key is of a "
            "type BoringSSL does not offer, such as Ed25519)"
        ) from e
    return channel


def reflect(channel, request):
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    try:
        responses = stub.ServerReflectionInfo(iter([request]), timeout=CALL_TIMEOUT_SECS)
        response = next(iter(responses))
    except grpc.RpcError as e:
        raise CheckFailed(f"reflection v1alpha failed: {rpc_text(e)}") from e
    if response.HasField("error_response"):
        err = response.error_response
        raise CheckFailed(
            f"reflection v1alpha refused {request}: {err.error_code} {err.error_message}"
        )
    return response


def check_reflection_lists_payments(channel):
    response = reflect(channel, reflection_pb2.ServerReflectionRequest(list_services=""))
    names = [s.name for s in response.list_services_response.service]
    if PAYMENTS not in names:
        raise CheckFailed(f"reflection v1alpha lists {names}, without {PAYMENTS}")
    return names


def descriptor_pool_for(channel, symbol):
    """A pool holding the file that defines `symbol` and, transitively, its imports."""
    pool = descriptor_pool.DescriptorPool()
    added = set()
    known = {}

    def fetch(request):
        response = reflect(channel, request)
        for raw in response.file_descriptor_response.file_descriptor_proto:
            proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
            known.setdefault(proto.name, proto)
        return response

    def add(name):
        if name in added:
            return
        if name not in known:
            fetch(reflection_pb2.ServerReflectionRequest(file_by_filename=name))
        if name not in known:
            raise CheckFailed(f"reflection v1alpha did not return {name}")
        proto = known[name]
        for dependency in proto.dependency:
            add(dependency)
        pool.Add(proto)
        added.add(name)

    first = fetch(reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol))
    if not first.file_descriptor_response.file_descriptor_proto:
        raise CheckFailed(f"reflection v1alpha returned no file for {symbol}")
    for name in list(known):
        add(name)
    return pool


def balances_call(channel):
    """GetBalances with message classes built from the reflected descriptors."""
    pool = descriptor_pool_for(channel, PAYMENTS)
    try:
        method = pool.FindServiceByName(PAYMENTS).methods_by_name["GetBalances"]
    except KeyError as e:
        raise CheckFailed(f"the reflected {PAYMENTS} has no GetBalances method") from e
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    call = channel.unary_unary(
        f"/{PAYMENTS}/GetBalances",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=response_class.FromString,
    )
    return call, request_class


def check_anonymous_balances_refused(channel):
    call, request_class = balances_call(channel)
    try:
        call(request_class(), timeout=CALL_TIMEOUT_SECS)
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.UNAUTHENTICATED:
            raise CheckFailed(
                f"GetBalances without a client certificate gave {rpc_text(e)}, "
                "not UNAUTHENTICATED"
            ) from e
        return e.details()
    raise CheckFailed("GetBalances without a client certificate listed accounts")


def check_get_balances(channel, expected, bic):
    """The bank's listing is exactly its accounts of the configuration (`expected`: id ->
    owner); returns them."""
    call, request_class = balances_call(channel)
    try:
        response = call(request_class(), timeout=CALL_TIMEOUT_SECS)
    except grpc.RpcError as e:
        raise CheckFailed(f"GetBalances as {bic} failed: {rpc_text(e)}") from e
    got = {b.account: b for b in response.balances}
    own = sorted(a for a, owner in expected.items() if owner == bic)
    if sorted(got) != own:
        raise CheckFailed(
            f"GetBalances as {bic} lists accounts {sorted(got)}; the configuration gives the "
            f"bank exactly {own}"
        )
    for account, balance in got.items():
        if balance.owner_bic != bic:
            raise CheckFailed(
                f"GetBalances as {bic} gives account {account} of {balance.owner_bic!r}"
            )
    return got


def check_others_account_not_found(channel, expected, bic):
    """Another bank's account, asked by id, is NOT_FOUND; returns its id."""
    others = sorted(a for a, owner in expected.items() if owner and owner != bic)
    if not others:
        raise CheckFailed(f"the configuration has no account of a bank other than {bic}")
    call, request_class = balances_call(channel)
    request = request_class()
    request.accounts.append(others[0])
    try:
        call(request, timeout=CALL_TIMEOUT_SECS)
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.NOT_FOUND:
            raise CheckFailed(
                f"account {others[0]} of another bank asked as {bic} gave {rpc_text(e)}, "
                "not NOT_FOUND"
            ) from e
        return others[0]
    raise CheckFailed(f"account {others[0]} of another bank was shown to {bic}")


def check_health(channel):
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        reply = stub.Check(
            health_pb2.HealthCheckRequest(service=PAYMENTS), timeout=CALL_TIMEOUT_SECS
        )
    except grpc.RpcError as e:
        raise CheckFailed(f"grpc.health.v1 Check({PAYMENTS}) failed: {rpc_text(e)}") from e
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        raise CheckFailed(f"grpc.health.v1 Check({PAYMENTS}) says {name}, not SERVING")


def check_garbage_is_invalid_argument(channel):
    raw = channel.unary_unary(
        f"/{PAYMENTS}/GetQuote",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    try:
        raw(GARBAGE, timeout=CALL_TIMEOUT_SECS)
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.INVALID_ARGUMENT:
            raise CheckFailed(
                f"garbage to GetQuote gave {rpc_text(e)}, not INVALID_ARGUMENT"
            ) from e
        if MALFORMED_REASON not in (e.details() or ""):
            raise CheckFailed(
                f"garbage to GetQuote gave INVALID_ARGUMENT without {MALFORMED_REASON} in "
                f"its details: {e.details()!r}"
            ) from e
        return e.details()
    raise CheckFailed("garbage to GetQuote was answered as if it were a valid request")


def expected_accounts(config_path):
    """Account id -> owner BIC ('' for node-internal accounts) from a node configuration."""
    if not config_path:
        return {}
    try:
        with open(config_path, "rb") as f:
            config = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise CheckFailed(f"cannot read the node configuration {config_path}: {e}") from e
    accounts = {str(a["id"]): a.get("owner_bic", "") for a in config.get("account", [])}
    if not accounts:
        raise CheckFailed(f"the node configuration {config_path} lists no [[account]]")
    return accounts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("address", help="the node's public listener, host:port")
    parser.add_argument("ca", help="PEM bundle of the CA the node's TLS chain leads to")
    parser.add_argument(
        "--config",
        help="the node's TOML configuration; GetBalances must list its [[account]] entries",
    )
    parser.add_argument("--bic", required=True, help="the BIC of the bank --identity is")
    parser.add_argument(
        "--identity", required=True, help="the bank's participant-TLS chain (PEM, leaf first)"
    )
    parser.add_argument("--identity-key", required=True, help="its private key (PEM)")
    parser.add_argument(
        "--server-name",
        help="name to verify the node's certificate against (default: the address's host)",
    )
    args = parser.parse_args()

    checks = 0
    try:
        expected = expected_accounts(args.config)
        channel = connect(args.address, args.ca, args.server_name)
        with channel:
            names = check_reflection_lists_payments(channel)
            print(f"ok   reflection v1alpha lists {', '.join(names)}")
            checks += 1
            details = check_anonymous_balances_refused(channel)
            print(f"ok   GetBalances without a client certificate is UNAUTHENTICATED: {details}")
            checks += 1
            bank = connect(
                args.address, args.ca, args.server_name, (args.identity, args.identity_key)
            )
            with bank:
                balances = check_get_balances(bank, expected, args.bic)
                print(
                    f"ok   GetBalances as {args.bic} (dynamic, from reflected descriptors): "
                    f"exactly its {len(balances)} accounts of the configuration"
                )
                checks += 1
                other = check_others_account_not_found(bank, expected, args.bic)
                print(f"ok   account {other} of another bank is NOT_FOUND for {args.bic}")
                checks += 1
            check_health(channel)
            print(f"ok   grpc.health.v1 Check({PAYMENTS}) is SERVING")
            checks += 1
            details = check_garbage_is_invalid_argument(channel)
            print(f"ok   garbage to GetQuote is INVALID_ARGUMENT: {details}")
            checks += 1
    except CheckFailed as e:
        print(f"FAIL {e}", file=sys.stderr)
        print(
            f"grpc_python: {checks} check(s) passed before the failure (grpcio "
            f"{grpc.__version__}, {args.address})",
            file=sys.stderr,
        )
        return 1
    print(f"grpc_python: all {checks} checks passed (grpcio {grpc.__version__}, {args.address})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
