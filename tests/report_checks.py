"""Checks for `scan`'s reports: a real headless Chromium for the HTML page, and JUnit XML against the
JUnit XSD (scripts/install-schemas).

Chromium is Debian's chromium-headless-shell, installed by scripts/install-chromium (part of
scripts/install-tools) into .tools/bin; ``AOM_CHROMIUM_BIN`` overrides it. Driven through its command line
only: ``--dump-dom`` gives the document after the page's script ran (the page writes its JavaScript errors
and its own recount into the DOM), ``--enable-logging=stderr`` shows every console message, and
``--screenshot`` renders it.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Kept by CI (build/ is ignored by git): screenshots of the reports the tests rendered.
ARTIFACTS = ROOT / "build" / "test-artifacts"


def chromium() -> str:
    binary = os.environ.get("AOM_CHROMIUM_BIN") or str(ROOT / ".tools" / "bin" / "chromium-headless-shell")
    assert os.access(binary, os.X_OK), f"no headless Chromium at {binary}: run scripts/install-chromium"
    return binary


def _run(page: Path, *args: str, fragment: str = "") -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="aom-chromium-") as profile:
        return subprocess.run(
            [chromium(), "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={profile}",
             "--enable-logging=stderr", "--v=0", *args, page.resolve().as_uri() + fragment],
            capture_output=True, text=True, timeout=120, check=True,
        )


@dataclass
class Rendered:
    dom: str  #: the document after its script ran
    console: list[str]  #: every console message (log, error, uncaught exception, CSP violation)


def render(page: Path, fragment: str = "") -> Rendered:
    result = _run(page, "--dump-dom", fragment=fragment)
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    return Rendered(result.stdout, console)


def screenshot(page: Path, out: Path, width: int = 1280, height: int = 1400, fragment: str = "") -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    _run(page, f"--screenshot={out.resolve()}", f"--window-size={width},{height}", "--hide-scrollbars", fragment=fragment)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, f"{out} is not a rendered PNG"
    return out


class Elements(HTMLParser):
    """Every element of a page (tag, attributes) and the text of the elements with an id."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text_by_id: dict[str, str] = {}
        self._open: list[str | None] = []
        self.text = ""
        self.feed(markup)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        if tag not in ("meta", "input", "br", "img", "link"):
            self._open.append(dict(attrs).get("id"))
            if self._open[-1]:
                self.text_by_id[self._open[-1]] = ""

    def handle_endtag(self, tag: str) -> None:
        if self._open and tag not in ("meta", "input", "br", "img", "link"):
            self._open.pop()

    def handle_data(self, data: str) -> None:
        self.text += data
        for element_id in filter(None, self._open):
            self.text_by_id[element_id] += data

    def tags(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.elements if name == tag]


# ------------------------------------------------------------------------------ JUnit XSD (a subset)

XS = "{http://www.w3.org/2001/XMLSchema}"


class XsdSubset:
    """Validates a document against an XSD made of the constructs junit-10.xsd uses, and refuses others.

    Each content model becomes a regular expression over the child elements' names, so occurrence bounds,
    sequences and choices are checked exactly.
    """

    def __init__(self, xsd: Path) -> None:
        self.schema = ET.parse(xsd).getroot()
        self.elements = {e.get("name"): e for e in self.schema.findall(f"{XS}element")}
        self.complex = {t.get("name"): t for t in self.schema.findall(f"{XS}complexType")}
        self.simple = {t.get("name"): t for t in self.schema.findall(f"{XS}simpleType")}

    def validate(self, document: ET.Element) -> None:
        assert document.tag in self.elements, f"root <{document.tag}> is not a global element of the schema"
        self._element(document, self.elements[document.tag], f"/{document.tag}")

    def _element(self, node: ET.Element, decl: ET.Element, where: str) -> None:
        type_name = decl.get("type")
        inline = decl.find(f"{XS}complexType")
        if type_name == "xs:string":
            assert not list(node) and not node.attrib, f"{where}: text only, found children or attributes"
            return
        ctype = inline if inline is not None else self.complex.get(type_name or "")
        assert ctype is not None, f"{where}: unsupported type {type_name!r}"
        self._attributes(node, ctype, where)
        if ctype.get("mixed") != "true":
            texts = [node.text, *(child.tail for child in node)]
            assert all(not (t or "").strip() for t in texts), f"{where}: text in an element without mixed content"
        model = [c for c in ctype if c.tag in (f"{XS}sequence", f"{XS}choice")]
        pattern = self._pattern(model[0]) if model else ""
        names = "".join(f"<{child.tag}>" for child in node)
        assert re.fullmatch(pattern, names), f"{where}: children {names or '(none)'} do not match {pattern!r}"
        for k, child in enumerate(node):
            self._element(child, self._declaration(model[0], child.tag), f"{where}/{child.tag}[{k}]")

    def _attributes(self, node: ET.Element, ctype: ET.Element, where: str) -> None:
        declared = {a.get("name"): a for a in ctype.findall(f"{XS}attribute")}
        for name in node.attrib:
            assert name in declared, f"{where}: attribute {name!r} is not in the schema"
        for name, attribute in declared.items():
            value = node.get(name or "")
            if value is None:
                assert attribute.get("use") != "required", f"{where}: required attribute {name!r} missing"
                continue
            simple = self.simple.get(attribute.get("type") or "")
            if simple is not None:
                [restriction] = simple.findall(f"{XS}restriction")
                assert restriction.get("base") == "xs:string", f"unsupported simple type {simple.get('name')}"
                for facet in restriction:
                    assert facet.tag == f"{XS}pattern", f"unsupported facet {facet.tag}"
                    assert re.fullmatch(facet.get("value") or "", value), f"{where}: {name}={value!r} fails its pattern"
            else:
                assert attribute.get("type") == "xs:string", f"unsupported attribute type {attribute.get('type')}"

    def _pattern(self, particle: ET.Element) -> str:
        low = int(particle.get("minOccurs", "1"))
        high = particle.get("maxOccurs", "1")
        bounds = f"{{{low},{'' if high == 'unbounded' else high}}}"
        if particle.tag == f"{XS}element":
            inner = f"<{particle.get('ref') or particle.get('name')}>"
        elif particle.tag in (f"{XS}sequence", f"{XS}choice"):
            parts = [self._pattern(p) for p in particle]
            inner = ("|" if particle.tag == f"{XS}choice" else "").join(parts)
        else:
            raise AssertionError(f"unsupported particle {particle.tag}")
        return f"(?:{inner}){bounds}"

    def _declaration(self, particle: ET.Element, name: str) -> ET.Element:
        for node in particle.iter(f"{XS}element"):
            if node.get("ref") == name:
                return self.elements[name]
            if node.get("name") == name:
                return node
        raise AssertionError(f"no declaration of <{name}>")
