# Sourced by the shell tests (tests/interop/run.sh, tests/reports/check.sh): ports for a
# devnet started on loopback.
#
# A base port N such that N..N+2 (JP) and N+100..N+102 (SG) are free on 127.0.0.1.
free_base_port() {
  python3 - <<'PY'
import random, socket, sys
for _ in range(200):
    base = random.randint(20000, 60000)
    socks = []
    try:
        for port in (base, base + 1, base + 2, base + 100, base + 101, base + 102):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind(("127.0.0.1", port))
        print(base)
        sys.exit(0)
    except OSError:
        pass
    finally:
        for s in socks:
            s.close()
sys.exit(1)
PY
}
