#!/usr/bin/env python3
"""Checks the reports as headless Chromium rendered them (tests/reports/check.sh).

For each report, DIR holds the command's --json output (NAME.json), the DOM Chromium rendered
(NAME.dom.html) and its screenshot (report-NAME.png). The key figures are read from the JSON
and must be on the rendered page: the charts (inline SVG with bars and labels), the verdicts,
the counts. Nothing in a page may be fetched or run. Exit 0 when every check passes; each
failure is printed.

    python3 tests/reports/check_dom.py DIR
"""

import json
import struct
import sys
import zlib
from html.parser import HTMLParser
from pathlib import Path


class Page(HTMLParser):
    """What a rendered DOM holds: its text, its charts, its tiles, its verdict cells."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.svgs = []  # per <svg>: {"rects": n, "texts": [..]}
        self.text = []
        self.tiles = {}  # label -> value
        self.verdicts = []  # the classes' verdicts of <td class="verdict ...">
        self.banner = ""
        self.forbidden = []
        self._stack = []
        self._svg_depth = 0
        self._tile_value = None
        self._capture = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if tag in ("script", "iframe", "object", "embed", "link", "img"):
            self.forbidden.append(tag)
        for name in ("src", "href"):
            if name in attrs:
                self.forbidden.append(f"{tag} {name}={attrs[name]}")
        if tag == "svg":
            self._svg_depth += 1
            if self._svg_depth == 1:
                self.svgs.append({"rects": 0, "texts": []})
        elif self._svg_depth and tag == "rect":
            self.svgs[-1]["rects"] += 1
        if tag == "td" and "verdict" in classes:
            self.verdicts.append([c for c in classes if c != "verdict"][0])
        if tag == "div" and "banner" in classes:
            self._capture = "banner"
        if tag == "span" and "value" in classes:
            self._capture = "tile-value"
        if tag == "span" and "label" in classes:
            self._capture = "tile-label"
        if tag not in ("meta", "br", "input", "hr", "img", "link"):
            self._stack.append(tag)

    def handle_endtag(self, tag):
        if tag == "svg":
            self._svg_depth -= 1
        if tag in ("div", "span"):
            self._capture = None
        while self._stack:
            if self._stack.pop() == tag:
                break

    def handle_data(self, data):
        if self._svg_depth:
            if data.strip():
                self.svgs[-1]["texts"].append(data.strip())
            return
        self.text.append(data)
        if self._capture == "banner":
            self.banner += data
        elif self._capture == "tile-value":
            self._tile_value = data.strip()
        elif self._capture == "tile-label" and self._tile_value is not None:
            self.tiles[data.strip()] = self._tile_value
            self._tile_value = None

    @property
    def all_text(self):
        return " ".join(" ".join(self.text).split())


class Checks:
    def __init__(self):
        self.failures = []
        self.passed = 0

    def expect(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.failures.append(what)


def load(directory, name):
    page = Page()
    page.feed((directory / f"{name}.dom.html").read_text(encoding="utf-8"))
    page.close()
    figures = json.loads((directory / f"{name}.json").read_text(encoding="utf-8"))
    return page, figures


def check_common(checks, name, page, charts, lines=()):
    """`lines`: the indices of line charts, which have no bars."""
    checks.expect(not page.forbidden, f"{name}: nothing fetched or run, found {page.forbidden}")
    checks.expect(len(page.svgs) == charts, f"{name}: {charts} charts, found {len(page.svgs)}")
    for n, svg in enumerate(page.svgs):
        if n not in lines:
            checks.expect(svg["rects"] >= 3, f"{name}: chart {n} has bars ({svg['rects']} rects)")
        checks.expect(len(svg["texts"]) >= 3, f"{name}: chart {n} has labels {svg['texts']}")


def check_tile(checks, name, page, label, value):
    checks.expect(
        page.tiles.get(label) == value,
        f"{name}: tile {label!r} is {value!r}, found {page.tiles.get(label)!r}",
    )


def check_bench(checks, page, figures):
    name = "bench"
    check_common(checks, name, page, 3, lines=(2,))
    check_tile(checks, name, page, "payments/s (settled, wall time)",
               f"{figures['payments_per_sec']:.1f}")
    check_tile(checks, name, page, "settled", f"{figures['settled']} of {figures['payments']}")
    check_tile(checks, name, page, "SubmitPayment p50", f"{figures['submit_ms']['p50']:.1f} ms")
    check_tile(checks, name, page, "SubmitPayment p99", f"{figures['submit_ms']['p99']:.1f} ms")
    text = page.all_text
    for answer, count in figures["answers"].items():
        checks.expect(f"{answer} {count}" in text, f"{name}: answer {answer} {count} listed")
    if figures["balances_exact"] and figures["settled"] == figures["payments"]:
        checks.expect("Every payment settled" in page.banner, f"{name}: banner {page.banner!r}")
    checks.expect("debited" in text and figures["debited"] in text, f"{name}: what moved")
    for fact in ("cores", "CPU", "OS", "command"):
        checks.expect(f"{fact} " in text, f"{name}: the machine and run facts ({fact})")
    checks.expect("bench --payments" in text, f"{name}: the command line")
    histogram = " ".join(page.svgs[1]["texts"]) if len(page.svgs) > 1 else ""
    checks.expect(f"p99 {figures['submit_ms']['p99']:.1f} ms" in histogram,
                  f"{name}: the histogram marks p99")
    throughput = " ".join(page.svgs[0]["texts"]) if page.svgs else ""
    checks.expect(f"mean {figures['payments_per_sec']:.1f} settled payments/s" in throughput,
                  f"{name}: the throughput chart draws the mean")
    mib = 1024 * 1024
    rss = (f"start {figures['rss_start_bytes'] / mib:.1f} MiB, "
           f"end {figures['rss_end_bytes'] / mib:.1f} MiB")
    checks.expect(rss in text, f"{name}: the RSS chart's caption gives {rss}")
    split = figures.get("cpu_split_us") or {}
    checks.expect(f"{split.get('storage', -1):.1f}" in text,
                  f"{name}: the CPU split's storage figure")


def check_audit(checks, page, figures):
    name = "audit"
    check_common(checks, name, page, 1)
    text = page.all_text
    if figures["clean"]:
        checks.expect("Result: clean" in page.banner, f"{name}: banner {page.banner!r}")
        checks.expect(page.verdicts == ["pass"] * 8, f"{name}: 8 checks pass, {page.verdicts}")
    check_tile(checks, name, page, "journal records replayed", str(figures["records"]))
    check_tile(checks, name, page, "checkpoints verified", str(figures["checkpoints_verified"]))
    check_tile(checks, name, page, "signed heads verified", str(figures["signed_heads_verified"]))
    check_tile(checks, name, page, "signed to record",
               f"{figures['last_signed_seq']} of {figures['records']}")
    check_tile(checks, name, page, "discrepancies",
               str(len(figures["discrepancies"]) + figures["discrepancies_not_listed"]))
    checks.expect(figures["verifying_key"] in text, f"{name}: the node key")
    labels = " ".join(page.svgs[0]["texts"]) if page.svgs else ""
    for totals in figures["ledgers"]:
        checks.expect(f"ledger {totals['ledger']} (" in labels, f"{name}: ledger {totals['ledger']} charted")
        checks.expect(totals["debits_posted"] in labels, f"{name}: posted debits labelled")


def check_pair(checks, page, figures):
    name = "pair-audit"
    directions = figures["directions"]
    check_common(checks, name, page, len(directions))
    text = page.all_text
    if figures["agrees"]:
        checks.expect("Result: the pair agrees." in page.banner, f"{name}: banner {page.banner!r}")
        want = ["pass"] * (len(figures["nodes"]) + len(directions) + 13)
        checks.expect(page.verdicts == want, f"{name}: every check passes, {page.verdicts}")
    checks.expect(figures["agreement"]["id"] in text, f"{name}: the agreement id")
    checks.expect(figures["agreement"]["path"] in text, f"{name}: the agreement file")
    check_tile(checks, name, page, "payments", str(sum(d["payments"] for d in directions)))
    check_tile(checks, name, page, "settled", str(sum(d["settled"] for d in directions)))
    check_tile(checks, name, page, "rejected", str(sum(d["rejected"] for d in directions)))
    check_tile(checks, name, page, "discrepancies", str(len(figures["discrepancies"])
                                                          + figures["discrepancies_not_listed"]))
    for n, d in enumerate(directions):
        checks.expect(f"{d['sender']} → {d['receiver']}" in text, f"{name}: direction {n} heading")
        row = " ".join(str(d[k]) for k in ("payments", "settled", "rejected", "in_doubt", "inconsistent"))
        checks.expect(row in text, f"{name}: direction {n} counts {row!r}")
        labels = " ".join(page.svgs[n]["texts"]) if n < len(page.svgs) else ""
        p = d["position"]
        checks.expect(f"{d['sender']} corridor account {p['corridor_account']}" in labels,
                      f"{name}: direction {n} corridor chart")
        checks.expect(f"{d['receiver']} liquidity account {p['liquidity_account']}" in labels,
                      f"{name}: direction {n} liquidity chart")
        for amount in ("corridor_posted", "settled_source", "liquidity_debited", "settled_target"):
            checks.expect(p[amount]["value"] in labels, f"{name}: direction {n} {amount} labelled")


def png_size_and_ink(path):
    """Width, height and whether the image is more than one flat colour."""
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    width, height = struct.unpack(">II", data[16:24])
    idat, at = b"", 8
    while at + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        if kind == b"IDAT":
            idat += data[at + 8:at + 8 + length]
        at += 12 + length
    pixels = zlib.decompress(idat)
    return width, height, len(set(pixels[:4_000_000])) > 16


def main():
    directory = Path(sys.argv[1])
    checks = Checks()
    for name, check in (("bench", check_bench), ("audit", check_audit), ("pair-audit", check_pair)):
        page, figures = load(directory, name)
        check(checks, page, figures)
        shot = png_size_and_ink(directory / f"report-{name}.png")
        checks.expect(shot is not None and shot[0] == 1200 and shot[2],
                      f"{name}: a 1200-px-wide screenshot with content, got {shot}")
    for failure in checks.failures:
        print(f"FAIL {failure}")
    print(f"reports: {checks.passed} passed, {len(checks.failures)} failed")
    return 1 if checks.failures else 0


if __name__ == "__main__":
    sys.exit(main())
