"""Reads the JUnit report of `kakehashi replay --junit` with junitparser, a widely used JUnit
XML parser (the one many CI plugins build on), and checks what a CI system would show: the
suite's counts, one test case per payment line named after its line and end-to-end id, the
file as class, a failure on the lines whose expectation was not met, and the UETR, status,
reason and latency among each case's properties.

    junit_check.py REPORT.xml --file NAME --tests N --failures N --errors N [--failed ID ...]

Exit 0 when everything matches, 1 (with what differs) otherwise.
"""

import argparse
import re
import sys

from junitparser import Error, Failure, JUnitXml, Properties, Skipped

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("report")
    parser.add_argument("--file", required=True, help="the replayed file, as given to replay")
    parser.add_argument("--tests", type=int, required=True)
    parser.add_argument("--failures", type=int, required=True)
    parser.add_argument("--errors", type=int, required=True)
    parser.add_argument("--failed", nargs="*", default=[], help="end-to-end ids that fail")
    args = parser.parse_args()

    problems = []
    xml = JUnitXml.fromfile(args.report)
    suites = list(xml)
    if len(suites) != 1:
        problems.append(f"{len(suites)} test suites, expected 1")
    suite = suites[0]
    for name, want in [
        ("tests", args.tests),
        ("failures", args.failures),
        ("errors", args.errors),
        ("skipped", 0),
    ]:
        got = getattr(suite, name)
        if got != want:
            problems.append(f"testsuite {name}={got}, expected {want}")
    if suite.name != args.file:
        problems.append(f"testsuite name {suite.name!r}, expected {args.file!r}")
    if suite.time is None or suite.time < 0:
        problems.append(f"testsuite time {suite.time!r}")

    cases = list(suite)
    if len(cases) != args.tests:
        problems.append(f"{len(cases)} test cases, expected {args.tests}")
    counted = {"failure": 0, "error": 0}
    for number, case in enumerate(cases, start=1):
        where = f"test case {case.name!r}"
        match = re.fullmatch(r"line (\d+): (.+)", case.name or "")
        if not match or int(match.group(1)) != number:
            problems.append(f"{where}: not named 'line {number}: <end-to-end id>'")
            continue
        e2e = match.group(2)
        if case.classname != args.file:
            problems.append(f"{where}: classname {case.classname!r}")
        properties = {p.name: p.value for p in (case.child(Properties) or [])}
        if not UUID.match(properties.get("uetr", "")):
            problems.append(f"{where}: uetr property {properties.get('uetr')!r}")
        if properties.get("status") not in ("ACSC", "RJCT"):
            problems.append(f"{where}: status property {properties.get('status')!r}")
        if properties.get("status") == "RJCT" and not properties.get("reason"):
            problems.append(f"{where}: a rejection without its reason")
        try:
            float(properties.get("latency_ms", ""))
        except ValueError:
            problems.append(f"{where}: latency_ms property {properties.get('latency_ms')!r}")
        kinds = {type(r) for r in case.result}
        if Skipped in kinds:
            problems.append(f"{where}: skipped")
        if Error in kinds:
            counted["error"] += 1
        failed = Failure in kinds
        counted["failure"] += failed
        if failed != (e2e in args.failed):
            problems.append(f"{where}: failure {failed}, expected {e2e in args.failed}")
        if failed and not any(r.message.startswith("expected ") for r in case.result):
            problems.append(f"{where}: the failure does not say what was expected")
    if counted["failure"] != args.failures or counted["error"] != args.errors:
        problems.append(f"cases carry {counted}, the suite says {args.failures} and {args.errors}")

    if problems:
        for p in problems:
            print(f"junit_check: {p}", file=sys.stderr)
        return 1
    print(
        f"junit_check: junitparser read {args.report}: {suite.tests} tests, "
        f"{suite.failures} failures, {suite.errors} errors, as expected"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
