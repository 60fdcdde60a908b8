"""Shows that check_model.py is a real check: it passes the documents a validator passes and
refuses broken ones, and on pacs.008.001.08, whose official XSD is committed, its verdict on
some seven hundred edited messages (texts, attributes, deletions, swaps) is xmllint's.

Run with the Python of a virtualenv holding requirements.txt:
    python -m unittest discover -s tests/iso20022 -v
xmllint is needed for the comparison; without it that test is skipped, unless
KAKEHASHI_REQUIRE_XMLLINT is set (as .ci/run sets it), when it fails.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import tempfile
import unittest
import xml.etree.ElementTree as ET
from pathlib import Path

import check_model

DATA = Path(__file__).resolve().parent.parent / "data" / "iso20022"
PACS002 = "urn:iso:std:iso:20022:tech:xsd:pacs.002.001.10"
SAMPLE_002 = DATA / "pacs002" / "pacs002-jp-to-sg.xml"
SAMPLES_008 = sorted(DATA.glob("pacs008-*.xml"))


def findings(root: ET.Element) -> list[str]:
    namespace = root.tag[1:].split("}", 1)[0]
    return check_model.Checker(check_model.module_for(namespace)).check(root)


def q(name: str) -> str:
    return f"{{{PACS002}}}{name}"


def pacs002() -> ET.Element:
    return ET.parse(SAMPLE_002).getroot()


def first(root: ET.Element, path: str) -> ET.Element:
    found = root.find("/".join(q(step) for step in path.split("/")))
    assert found is not None, path
    return found


def add(parent: ET.Element, name: str, text: str | None = None, at: int | None = None):
    child = ET.Element(q(name))
    child.text = text
    if at is None:
        parent.append(child)
    else:
        parent.insert(at, child)
    return child


class Conforming(unittest.TestCase):
    def test_the_pacs002_sample_conforms(self):
        self.assertEqual(findings(pacs002()), [])

    def test_the_pacs008_samples_conform_to_the_pacs008_model(self):
        self.assertTrue(SAMPLES_008)
        for sample in SAMPLES_008:
            with self.subTest(sample.name):
                self.assertEqual(findings(ET.parse(sample).getroot()), [])

    def test_a_valid_enumeration_value_passes(self):
        # The counterpart of the bad enumeration below: the same place with a listed code.
        root = pacs002()
        tx = first(root, "FIToFIPmtStsRpt/TxInfAndSts")
        ref = add(tx, "OrgnlTxRef")
        add(add(ref, "PmtTpInf"), "ClrChanl", "RTGS")
        self.assertEqual(findings(root), [])


class Refused(unittest.TestCase):
    def refused(self, root: ET.Element, needle: str) -> None:
        errors = findings(root)
        self.assertTrue(any(needle in e for e in errors), f"{needle!r} not in {errors}")

    def test_wrong_order(self):
        root = pacs002()
        tx = first(root, "FIToFIPmtStsRpt/TxInfAndSts")
        instr = first(tx, "OrgnlInstrId")
        tx.remove(instr)
        tx.insert(list(tx).index(first(tx, "OrgnlEndToEndId")) + 1, instr)
        self.refused(root, "out of the schema's sequence order")

    def test_missing_required(self):
        root = pacs002()
        header = first(root, "FIToFIPmtStsRpt/GrpHdr")
        header.remove(first(header, "MsgId"))
        self.refused(root, "MsgId occurs 0 times, at least 1 required")

    def test_missing_required_complex(self):
        root = pacs002()
        report = first(root, "FIToFIPmtStsRpt")
        report.remove(first(report, "GrpHdr"))
        self.refused(root, "GrpHdr occurs 0 times")

    def test_bad_enumeration(self):
        root = pacs002()
        tx = first(root, "FIToFIPmtStsRpt/TxInfAndSts")
        ref = add(tx, "OrgnlTxRef")
        add(add(ref, "PmtTpInf"), "ClrChanl", "RTGX")
        self.refused(root, "is none of the enumeration")

    def test_too_long_text(self):
        root = pacs002()
        first(root, "FIToFIPmtStsRpt/TxInfAndSts/TxSts").text = "ACSCX"
        self.refused(root, "5 characters, at most 4")
        root = pacs002()
        first(root, "FIToFIPmtStsRpt/GrpHdr/MsgId").text = "M" * 36
        self.refused(root, "36 characters, at most 35")

    def test_empty_text(self):
        root = pacs002()
        first(root, "FIToFIPmtStsRpt/GrpHdr/MsgId").text = ""
        self.refused(root, "0 characters, at least 1")

    def test_unknown_element(self):
        root = pacs002()
        add(first(root, "FIToFIPmtStsRpt/TxInfAndSts"), "Foo", "bar")
        self.refused(root, "Foo: element not declared here")

    def test_element_of_another_namespace(self):
        root = pacs002()
        header = first(root, "FIToFIPmtStsRpt/GrpHdr")
        header.find(q("MsgId")).tag = "{urn:iso:std:iso:20022:tech:xsd:pacs.002.001.11}MsgId"
        self.refused(root, "element not declared here")

    def test_both_alternatives_of_a_choice(self):
        root = pacs002()
        reason = root.findall(".//" + q("Rsn"))[0]
        add(reason, "Prtry", "X")
        self.refused(root, "a choice holds one alternative")

    def test_empty_choice(self):
        root = pacs002()
        reason = root.findall(".//" + q("Rsn"))[0]
        reason.remove(first(reason, "Cd"))
        self.refused(root, "a choice without any of its alternatives")

    def test_bad_pattern(self):
        root = pacs002()
        first(root, "FIToFIPmtStsRpt/TxInfAndSts/OrgnlUETR").text = (
            "3f6c1d2a-8b4e-1f7a-9c15-2d8e6b0a4f11"
        )
        self.refused(root, "does not match the pattern")

    def test_bad_date_time(self):
        root = pacs002()
        first(root, "FIToFIPmtStsRpt/GrpHdr/CreDtTm").text = "2026-02-30T00:00:00Z"
        self.refused(root, "is not a valid date-time")
        root = pacs002()
        first(root, "FIToFIPmtStsRpt/GrpHdr/CreDtTm").text = "7 Dec 2026"
        self.refused(root, "is not a date-time")

    def test_too_many(self):
        root = pacs002()
        info = root.findall(".//" + q("StsRsnInf"))[0]
        for _ in range(3):
            add(info, "AddtlInf", "more")
        # AddtlInf is [0..*] in pacs.002.001.10, so the bound tested is GrpHdr's single MsgId.
        header = first(root, "FIToFIPmtStsRpt/GrpHdr")
        add(header, "MsgId", "AGAIN", at=1)
        self.refused(root, "MsgId occurs 2 times, at most 1 allowed")

    def test_text_in_a_complex_element(self):
        root = pacs002()
        first(root, "FIToFIPmtStsRpt/GrpHdr").text = "stray"
        self.refused(root, "in a complex element")

    def test_unknown_attribute(self):
        root = pacs002()
        first(root, "FIToFIPmtStsRpt/GrpHdr/MsgId").set("Ccy", "JPY")
        self.refused(root, "attributes ['Ccy'] on a simple element")

    def test_wrong_root(self):
        root = pacs002()
        root.tag = q("Doc")
        self.refused(root, "root element")


class ChoiceConvention(unittest.TestCase):
    """The checker takes a type named `...Choice` for an `xs:choice` (the generated classes
    do not say it): in the official schemas committed, that naming holds both ways."""

    def test_choice_types_are_the_types_named_choice(self):
        xs = "{http://www.w3.org/2001/XMLSchema}"
        for xsd in sorted((DATA / "xsd").glob("*.xsd")):
            with self.subTest(xsd.name):
                types = ET.parse(xsd).getroot().findall(xs + "complexType")
                self.assertGreater(len(types), 50)
                for complex_type in types:
                    name = complex_type.get("name")
                    is_choice = complex_type.find(xs + "choice") is not None
                    self.assertEqual(is_choice, name.endswith("Choice"), name)


# Texts put in place of each simple element's: empty, long, a letter code, a lower-case one,
# digits, a decimal with many fraction digits, a negative number, and date-like texts.
TEXTS = ("", "X" * 141, "ZZZZ", "abc", "12", "1.123456", "-5", "2026-13-01", "2026-12-07")
# Values put in place of each attribute's (the currency codes of amounts).
ATTRIBUTE_VALUES = ("", "jpy", "JPYY", "USD")


def edits(root: ET.Element):
    """Every message obtained by one edit: a simple element's text or an attribute's value
    replaced, an undeclared attribute added, an element deleted, or two adjacent siblings
    swapped. Yields (what was done, the edited copy)."""

    def leaves(tree: ET.Element) -> list[ET.Element]:
        return [e for e in tree.iter() if len(e) == 0]

    def name(element: ET.Element) -> str:
        return element.tag.rsplit("}", 1)[-1]

    for index, leaf in enumerate(leaves(root)):
        for text in TEXTS:
            if text != leaf.text:
                edited = copy.deepcopy(root)
                leaves(edited)[index].text = text
                yield f"{name(leaf)} text {text!r}", edited
        for attribute in leaf.attrib:
            for value in ATTRIBUTE_VALUES:
                edited = copy.deepcopy(root)
                leaves(edited)[index].set(attribute, value)
                yield f"{name(leaf)}/@{attribute} {value!r}", edited
        edited = copy.deepcopy(root)
        leaves(edited)[index].set("Extra", "1")
        yield f"{name(leaf)} with an undeclared attribute", edited

    def children(tree: ET.Element) -> list[tuple[ET.Element, int]]:
        return [(p, i) for p in tree.iter() for i in range(len(p))]

    for position, (parent, i) in enumerate(children(root)):
        edited = copy.deepcopy(root)
        target, _ = children(edited)[position]
        del target[i]
        yield f"delete child {i} of {name(parent)}", edited
        if i + 1 < len(parent) and parent[i].tag != parent[i + 1].tag:
            edited = copy.deepcopy(root)
            target, _ = children(edited)[position]
            target[i], target[i + 1] = target[i + 1], target[i]
            yield f"swap children {i} and {i + 1} of {name(parent)}", edited


class SameVerdictAsXmllint(unittest.TestCase):
    """On pacs.008.001.08 the committed official XSD decides: the model check must agree."""

    def test_edited_pacs008_messages(self):
        if shutil.which("xmllint") is None:
            if os.environ.get("KAKEHASHI_REQUIRE_XMLLINT"):
                self.fail("xmllint is not installed but KAKEHASHI_REQUIRE_XMLLINT is set")
            self.skipTest("xmllint is not installed")
        xsd = DATA / "xsd" / "pacs.008.001.08.xsd"
        ET.register_namespace("", "urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08")
        compared = refused = 0
        with tempfile.TemporaryDirectory() as scratch:
            for sample in SAMPLES_008:
                for what, edited in edits(ET.parse(sample).getroot()):
                    path = Path(scratch) / "edited.xml"
                    ET.ElementTree(edited).write(path, encoding="UTF-8", xml_declaration=True)
                    lint = subprocess.run(
                        ["xmllint", "--noout", "--schema", str(xsd), str(path)],
                        capture_output=True,
                        text=True,
                    )
                    model = findings(edited)
                    with self.subTest(f"{sample.name}: {what}"):
                        self.assertEqual(
                            lint.returncode == 0,
                            model == [],
                            f"xmllint: {lint.stderr.strip()}\nmodel: {model}",
                        )
                    compared += 1
                    refused += lint.returncode != 0
        # Both verdicts occur, so agreement is not agreement on one answer.
        self.assertGreater(refused, 10)
        self.assertGreater(compared - refused, 10)
        print(f"\n{compared} edited pacs.008 messages, {refused} refused, same verdicts")


if __name__ == "__main__":
    unittest.main()
