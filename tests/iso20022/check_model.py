"""Checks an ISO 20022 XML document against the message model that pyiso20022 ships.

The official XSD of pacs.002.001.10 is in no package registry this project can reach, so
xmllint cannot validate the pacs.002 that kakehashi writes. pyiso20022 (pinned in
requirements.txt beside this file) ships, for every message version, Python dataclasses that
xsdata generated from the official schema: each class is a complex type, each field an element
or attribute with its name, namespace, occurrence bounds and the simple type's facets, in the
schema's sequence order. This script walks a document and checks it against that model, the
way a schema validator would:

- the root is the model's `Document` in the message's namespace;
- the children of each element are the elements of its type's sequence, in order, each within
  its occurrence bounds, and every required one present; an element the type does not declare
  fails;
- a `...Choice` type (ISO 20022 names every `xs:choice` type so, and only those) holds exactly
  one of its alternatives;
- texts are checked against their simple type: enumerations, length, pattern, decimal digits
  and bounds, dates, date-times and booleans; attributes likewise, with unknown ones refused;
- a complex element holds no text; a simple one holds no elements.

A model construct the script does not know (a wildcard, a mixed type, an unknown simple type,
a pattern using XSD-only regular expression syntax) fails the check instead of passing it.

Usage: check_model.py [--message pacs.002.001.10] FILE...  ("-" reads standard input)
Exit status: 0 when every document conforms, 1 when one does not, 2 when the check could not
run (a missing model, an unreadable file).
"""

from __future__ import annotations

import argparse
import dataclasses
import decimal
import enum
import importlib
import re
import sys
import typing
import xml.etree.ElementTree as ET

try:
    from xsdata.formats.dataclass.context import XmlContext
    from xsdata.models.datatype import XmlDate, XmlDateTime, XmlTime
except ImportError as missing:
    # Exit status 2, not a traceback's 1: a check that cannot run must not read as a refusal.
    print(f"the check could not run: {missing} (pip install -r requirements.txt)", file=sys.stderr)
    sys.exit(2)

NAMESPACE_PREFIX = "urn:iso:std:iso:20022:tech:xsd:"
UNBOUNDED = sys.maxsize

# XSD regular expression constructs Python's re reads differently or not at all (the name and
# category escapes, a character class subtraction `[a-z-[aeiou]]`): a pattern using one is
# refused rather than approximated.
XSD_ONLY_PATTERN = re.compile(r"\\[iIcCpP]|\[[^\]]*-\[")

DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
DATE = re.compile(r"-?[0-9]{4,}-[0-9]{2}-[0-9]{2}(?:Z|[+-][0-9]{2}:[0-9]{2})?")
DATE_TIME = re.compile(
    r"-?[0-9]{4,}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
    r"(?:Z|[+-][0-9]{2}:[0-9]{2})?"
)
TIME = re.compile(r"[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:Z|[+-][0-9]{2}:[0-9]{2})?")


class ModelError(Exception):
    """The model holds something this checker does not know how to check."""


def module_for(namespace: str):
    """The pyiso20022 module of a message namespace (pacs.002.001.10 -> pacs.pacs_002_001_10)."""
    if not namespace.startswith(NAMESPACE_PREFIX):
        raise ModelError(f"{namespace!r} is not an ISO 20022 message namespace")
    message = namespace[len(NAMESPACE_PREFIX):]
    parts = message.split(".")
    if len(parts) != 4 or not all(p.isalnum() for p in parts):
        raise ModelError(f"{message!r} is not a message identifier")
    name = "_".join(parts)
    try:
        return importlib.import_module(f"pyiso20022.{parts[0]}.{name}.{name}")
    except ImportError as e:
        raise ModelError(f"pyiso20022 has no model of {message}: {e}") from e


class Checker:
    """Checks documents against one message's model; collects every finding."""

    def __init__(self, module) -> None:
        self.context = XmlContext()
        self.document = module.Document
        self.errors: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")

    def check(self, root: ET.Element) -> list[str]:
        self.errors = []
        meta = self.context.build(self.document)
        if root.tag != meta.qname:
            self.fail("/", f"root element {root.tag}, expected {meta.qname}")
            return self.errors
        self.complex(root, self.document, "/Document")
        return self.errors

    # --- complex types -----------------------------------------------------------------------

    def complex(self, element: ET.Element, cls: type, path: str) -> None:
        meta = self.context.build(cls)
        facets = {f.name: dict(f.metadata) for f in dataclasses.fields(cls)}
        if meta.any_attributes or meta.wildcards or meta.mixed_content or meta.choices:
            raise ModelError(f"{cls.__name__}: wildcards and mixed content are not supported")
        self.attributes(element, meta, facets, path)
        if meta.text is not None:
            # Simple content with attributes (an amount and its currency).
            if len(element):
                self.fail(path, "a simple-content element holds child elements")
            self.simple(element.text or "", meta.text, facets[meta.text.name], path)
            return
        if element.text and element.text.strip():
            self.fail(path, f"text {element.text.strip()!r} in a complex element")
        for child in element:
            if child.tail and child.tail.strip():
                self.fail(path, f"text {child.tail.strip()!r} in a complex element")
        fields = list(meta.get_element_vars())
        for var in fields:
            if var.is_elements or var.is_wildcard or var.mixed:
                raise ModelError(f"{cls.__name__}.{var.name}: compound fields are not supported")
        if cls.__name__.endswith("Choice"):
            self.choice(element, cls, fields, facets, path)
        else:
            self.sequence(element, fields, facets, path)

    def bounds(self, var, facets: dict) -> tuple[int, int]:
        meta = facets[var.name]
        if var.list_element:
            return meta.get("min_occurs", 0), meta.get("max_occurs", UNBOUNDED)
        return (1 if var.required else 0), 1

    def sequence(self, element: ET.Element, fields: list, facets: dict, path: str) -> None:
        counts = [0] * len(fields)
        position = 0
        for child in element:
            name = local(child.tag)
            at = next(
                (i for i in range(position, len(fields)) if fields[i].qname == child.tag), None
            )
            if at is None:
                if any(v.qname == child.tag for v in fields):
                    self.fail(f"{path}/{name}", "out of the schema's sequence order")
                else:
                    self.fail(f"{path}/{name}", "element not declared here")
                continue
            # Skipping past a field that is required and absent is reported below.
            position = at
            counts[at] += 1
            suffix = f"[{counts[at]}]" if fields[at].list_element else ""
            self.value(child, fields[at], facets[fields[at].name], f"{path}/{name}{suffix}")
        for var, count in zip(fields, counts):
            low, high = self.bounds(var, facets)
            if count < low:
                self.fail(path, f"{var.local_name} occurs {count} times, at least {low} required")
            if count > high:
                self.fail(path, f"{var.local_name} occurs {count} times, at most {high} allowed")

    def choice(
        self, element: ET.Element, cls: type, fields: list, facets: dict, path: str
    ) -> None:
        if any(v.required for v in fields):
            raise ModelError(f"{cls.__name__}: a choice type with a required field")
        by_tag = {v.qname: v for v in fields}
        chosen = None
        count = 0
        for child in element:
            name = local(child.tag)
            var = by_tag.get(child.tag)
            if var is None:
                self.fail(f"{path}/{name}", "element not declared here")
                continue
            if chosen is not None and var is not chosen:
                self.fail(
                    f"{path}/{name}",
                    f"a choice holds one alternative, {chosen.local_name} is there",
                )
                continue
            chosen = var
            count += 1
            self.value(child, var, facets[var.name], f"{path}/{name}")
        if chosen is None:
            self.fail(path, "a choice without any of its alternatives")
            return
        low, high = self.bounds(chosen, facets)
        if chosen.list_element and not low <= count <= high:
            self.fail(path, f"{chosen.local_name} occurs {count} times, {low} to {high} allowed")
        if not chosen.list_element and count > 1:
            self.fail(path, f"{chosen.local_name} occurs {count} times, at most 1 allowed")

    def attributes(self, element: ET.Element, meta, facets: dict, path: str) -> None:
        declared = {v.qname: v for v in meta.get_attribute_vars()}
        for name, value in element.attrib.items():
            var = declared.get(name)
            if var is None:
                self.fail(path, f"attribute {name} not declared here")
                continue
            self.simple(value, var, facets[var.name], f"{path}/@{name}")
        for qname, var in declared.items():
            if var.required and qname not in element.attrib:
                self.fail(path, f"required attribute {var.local_name} missing")

    # --- values ------------------------------------------------------------------------------

    def value(self, element: ET.Element, var, facets: dict, path: str) -> None:
        if var.clazz is not None:
            self.complex(element, var.clazz, path)
            return
        if len(element):
            self.fail(path, "a simple element holds child elements")
            return
        if element.attrib:
            self.fail(path, f"attributes {sorted(element.attrib)} on a simple element")
        self.simple(element.text or "", var, facets, path)

    def simple(self, text: str, var, facets: dict, path: str) -> None:
        if len(var.types) != 1:
            raise ModelError(f"{path}: a union of simple types is not supported")
        kind = var.types[0]
        if isinstance(kind, type) and issubclass(kind, enum.Enum):
            allowed = [member.value for member in kind]
            if text not in allowed:
                self.fail(path, f"{text!r} is none of the enumeration {allowed}")
            return
        if kind is str:
            self.string(text, facets, path)
        elif kind is decimal.Decimal:
            self.decimal(text.strip(), facets, path)
        elif kind is bool:
            if text.strip() not in ("true", "false", "1", "0"):
                self.fail(path, f"{text!r} is not a boolean")
        elif kind is XmlDate:
            self.temporal(text.strip(), DATE, XmlDate, "date", path)
        elif kind is XmlDateTime:
            self.temporal(text.strip(), DATE_TIME, XmlDateTime, "date-time", path)
        elif kind is XmlTime:
            self.temporal(text.strip(), TIME, XmlTime, "time", path)
        else:
            raise ModelError(f"{path}: simple type {kind!r} is not supported")
        known = {
            "name", "type", "namespace", "required", "min_occurs", "max_occurs", "min_length",
            "max_length", "pattern", "total_digits", "fraction_digits", "min_inclusive",
            "max_inclusive", "min_exclusive", "max_exclusive",
        }
        unknown = set(facets) - known
        if unknown:
            raise ModelError(f"{path}: facets {sorted(unknown)} are not supported")

    def string(self, text: str, facets: dict, path: str) -> None:
        if "min_length" in facets and len(text) < facets["min_length"]:
            self.fail(path, f"{len(text)} characters, at least {facets['min_length']}")
        if "max_length" in facets and len(text) > facets["max_length"]:
            self.fail(path, f"{len(text)} characters, at most {facets['max_length']}")
        pattern = facets.get("pattern")
        if pattern is not None:
            if XSD_ONLY_PATTERN.search(pattern):
                raise ModelError(f"{path}: pattern {pattern!r} uses XSD-only syntax")
            if re.fullmatch(pattern, text) is None:
                self.fail(path, f"{text!r} does not match the pattern {pattern}")

    def decimal(self, text: str, facets: dict, path: str) -> None:
        if DECIMAL.fullmatch(text) is None:
            self.fail(path, f"{text!r} is not a decimal")
            return
        value = decimal.Decimal(text)
        digits = text.lstrip("+-")
        whole, _, fraction = digits.partition(".")
        fraction = fraction.rstrip("0")
        whole = whole.lstrip("0")
        total = len(whole) + len(fraction) if whole else len(fraction.lstrip("0")) or 1
        if "total_digits" in facets and total > facets["total_digits"]:
            self.fail(path, f"{text} has {total} digits, at most {facets['total_digits']}")
        if "fraction_digits" in facets and len(fraction) > facets["fraction_digits"]:
            self.fail(
                path,
                f"{text} has {len(fraction)} fraction digits, "
                f"at most {facets['fraction_digits']}",
            )
        for facet, ok in (
            ("min_inclusive", lambda bound: value >= bound),
            ("max_inclusive", lambda bound: value <= bound),
            ("min_exclusive", lambda bound: value > bound),
            ("max_exclusive", lambda bound: value < bound),
        ):
            if facet in facets and not ok(decimal.Decimal(facets[facet])):
                self.fail(path, f"{text} is outside {facet} {facets[facet]}")

    def temporal(self, text: str, lexical: re.Pattern, kind: type, what: str, path: str) -> None:
        if lexical.fullmatch(text) is None:
            self.fail(path, f"{text!r} is not a {what}")
            return
        try:
            parsed = kind.from_string(text)
            # Builds the standard library value: refuses a 31st of April or a 25th hour.
            if kind is XmlDate:
                parsed.to_date()
            elif kind is XmlDateTime:
                parsed.to_datetime()
            else:
                parsed.to_time()
        except ValueError:
            self.fail(path, f"{text!r} is not a valid {what}")


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def check_file(name: str, message: str | None) -> list[str]:
    """The findings on one document; raises OSError, ET.ParseError or ModelError."""
    if name == "-":
        root = ET.fromstring(sys.stdin.buffer.read())
    else:
        root = ET.parse(name).getroot()
    namespace = root.tag[1:].split("}", 1)[0] if root.tag.startswith("{") else ""
    if message is not None and namespace != NAMESPACE_PREFIX + message:
        return [f"/: namespace {namespace!r}, expected {NAMESPACE_PREFIX + message}"]
    return Checker(module_for(namespace)).check(root)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--message", help="the message version the documents must be")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args(argv)
    status = 0
    for name in args.files:
        try:
            errors = check_file(name, args.message)
        except (OSError, ModelError) as e:
            print(f"{name}: the check could not run: {e}", file=sys.stderr)
            return 2
        except ET.ParseError as e:
            print(f"{name}: not well-formed XML: {e}", file=sys.stderr)
            status = 1
            continue
        except Exception as e:  # noqa: BLE001 - any other failure is the checker's fault
            print(f"{name}: the check could not run: {e!r}", file=sys.stderr)
            return 2
        if errors:
            status = 1
            print(f"{name}: does not conform to the model", file=sys.stderr)
            for error in errors:
                print(f"  {error}", file=sys.stderr)
        else:
            print(f"{name}: conforms")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
