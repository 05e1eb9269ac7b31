"""The built docsite (`make docsite`: .cache/docsite/build/html) as a reader gets it: every internal link and anchor
resolves, Sphinx warned about nothing but the Ansible docsite's own labels (unreachable offline), no page fetches
anything from the network, and headless Chromium renders the front page, a guide and the module index with every
module of plugins/modules. `make docsite-check` builds the site first."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
SITE = Path(os.environ.get("PGTLS_DOCSITE", ROOT / ".cache" / "docsite"))
HTML = SITE / "build" / "html"
GUIDES = ROOT / "docs" / "docsite" / "rst"
MODULES = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if not p.stem.startswith("_"))
# The only warnings allowed: references to labels of the Ansible docsite, which intersphinx cannot load offline.
ALLOWED_WARNING = re.compile(r"WARNING: undefined label: '(common_return_values|action_plugins"
                             r"|ansible_configuration_settings|ansible_collections\.ansible\.builtin\.\w+)'")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]


class Page(HTMLParser):
    """The ids a page defines and the URLs it uses: links (a, link) and assets (script, img, stylesheets)."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.assets: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name"):
            if attrs.get(key) and (key == "id" or tag == "a"):
                self.ids.add(attrs[key])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        elif tag == "link" and attrs.get("href"):
            rel = (attrs.get("rel") or "").split()
            (self.assets if {"stylesheet", "icon"} & set(rel) else self.links).append(attrs["href"])
        elif tag in ("script", "img", "iframe", "source") and attrs.get("src"):
            self.assets.append(attrs["src"])


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


@pytest.fixture(scope="module")
def pages() -> dict[Path, Page]:
    if not (HTML / "index.html").is_file():
        pytest.fail(f"{HTML}/index.html is missing: run `make docsite` (make docsite-check does)")
    return {path: parse(path) for path in sorted(HTML.rglob("*.html"))}


def resolve(page: Path, url: str) -> tuple[Path, str] | None:
    """The file and anchor an internal URL points at; None for another site or scheme."""
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        return None
    path = unquote(parts.path)
    if not path:
        target = page
    elif path.startswith("/"):
        target = HTML / path.lstrip("/")
    else:
        target = (page.parent / path).resolve()
    if target.is_dir():
        target = target / "index.html"
    return target, unquote(parts.fragment)


def broken_links(pages: dict[Path, Page]) -> list[str]:
    broken = []
    for path, page in pages.items():
        for url in page.links + page.assets:
            found = resolve(path, url)
            if found is None:
                continue
            target, anchor = found
            where = f"{path.relative_to(HTML)}: {url}"
            if not target.exists():
                broken.append(f"{where} (no {target})")
            elif anchor and target.suffix == ".html" and anchor not in pages[target].ids:
                broken.append(f"{where} (no anchor #{anchor} in {target.relative_to(HTML)})")
    return broken


def test_every_guide_and_module_has_its_page(pages):
    guides = sorted(p.stem for p in GUIDES.glob("*.rst"))
    assert guides and MODULES
    for name in guides:
        assert HTML / "collections" / "pgtls" / "ssl" / "docsite" / f"{name}.html" in pages, name
    for name in MODULES:
        assert HTML / "collections" / "pgtls" / "ssl" / f"{name}_module.html" in pages, name


def test_internal_links_and_anchors_resolve(pages):
    assert sum(len(p.links) for p in pages.values()) > 1000  # the parser sees the links
    assert broken_links(pages) == []


def test_the_link_check_finds_a_broken_link_and_a_missing_anchor(pages):
    index = HTML / "index.html"
    page = Page()
    page.feed('<a href="collections/nowhere.html">x</a><a href="collections/index.html#no-such-anchor">y</a>'
              '<a href="collections/index.html">z</a><a href="https://example.invalid/">w</a>')
    found = broken_links({**pages, index: page})
    assert len(found) == 2 and "nowhere.html" in found[0] and "#no-such-anchor" in found[1], found


def test_sphinx_warned_only_about_the_ansible_docsite_labels():
    log = (SITE / "build.log").read_text(encoding="utf-8")
    assert "build succeeded" in log
    unexpected = [line for line in log.splitlines() if "WARNING" in line and not ALLOWED_WARNING.search(line)]
    assert unexpected == []
    assert "ERROR" not in log


def test_no_page_fetches_anything_from_the_network(pages):
    remote = sorted({f"{p.relative_to(HTML)}: {u}" for p, page in pages.items() for u in page.assets
                     if urlsplit(u).scheme or urlsplit(u).netloc})
    assert remote == []


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        pytest.fail("Chromium is missing: `make system-deps` installs Debian's chromium")
    return subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=120, check=True)


def test_chromium_renders_the_front_page_a_guide_and_every_module(pages, tmp_path):
    front = chromium("--dump-dom", (HTML / "index.html").as_uri(), profile=tmp_path / "p1").stdout
    assert "pgtls.ssl: correct, verified TLS for PostgreSQL fleets" in front
    assert 'href="collections/pgtls/ssl/docsite/getting_started.html' in front

    guide = HTML / "collections" / "pgtls" / "ssl" / "docsite" / "getting_started.html"
    dom = chromium("--dump-dom", guide.as_uri(), profile=tmp_path / "p2").stdout
    assert re.search(r"<h1>Getting started<a class=\"headerlink\"", dom)
    assert "ansible-playbook -i inventory pgtls.ssl.site" in re.sub(r"<[^>]+>", "", dom)
    shot = tmp_path / "guide.png"
    chromium("--window-size=1280,900", f"--screenshot={shot}", guide.as_uri(), profile=tmp_path / "p3")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20000, len(data)

    index = chromium("--dump-dom", (HTML / "collections" / "index_module.html").as_uri(),
                     profile=tmp_path / "p4").stdout
    listed = set(re.findall(r'href="pgtls/ssl/(\w+)_module\.html', index))
    assert listed == set(MODULES), sorted(set(MODULES) ^ listed)
