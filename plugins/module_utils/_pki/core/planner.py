# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""The one write planner: every file a module or action creates, replaces, moves or deletes is declared to a Plan
first, the Plan is checked as a whole, and only then is anything written.

A writer (``Plan(writer)``: the module or the part of an action that writes) declares each output with its kind
(CA key, certificate, CRL, report, registry, snapshot folder...) and the option that names it. ``check()`` then
refuses, before the first byte is written:

- two declarations of one file (after ``..`` and symbolic links in the folders above it are resolved), an output
  that is also an input of the same run, a folder where a file goes and a file where a folder goes;
- a symbolic link at an output, and any symbolic link under a CA folder (a folder holding ``root.crt`` and a CA key
  under the layout's names, or one the writer names); an output in a CA folder that the writer does not own
  (``cafolder.Layout.owners``);
- an existing file of another kind than the one replacing it (a report never replaces a key);
- content that does not parse as its kind (PEM or DER, JSON, YAML, a registry's entries), a key that does not
  match its certificate, a certificate that its issuer did not sign;
- deleting anything pgtls.ssl did not make (a snapshot folder without its marker, a file a snapshot did not record
  as absent), moving what is not a regular file, or over what exists;
- a folder to write in that is missing (and not declared) or not writable.

Reads of a run go through the Plan too (``read``, ``exists``, ``listdir``): they see what the Plan will write, so a
CA made in this run signs the next step's certificate before anything is on disk, and check mode sees the whole
run. ``apply()`` then runs the steps in the order declared, each file staged beside its path before the first rename;
``run()`` is the flow every writer shares: build, check, and for a real run build again under the CA folder's lock,
check, apply.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .errors import PkiError
from .files import (
    _LABEL,
    KINDS,
    MAX_CRL_BYTES,
    TMP_PREFIX,
    Attrs,
    apply_attributes,
    check_distinct,
    describe,
    differences,
    discard_staged,
    fsync_folder,
    is_temporary,
    read_bytes,
    remove_stale_temporaries,
    stage_file,
    write_atomic,
)

# A snapshot folder says it is one (and which files it protects) in this file; nothing else is ever deleted whole.
SNAPSHOT_MARKER = ".pgtls-snapshot-of"
LOCK_NAME = ".pgtls.lock"

# What an output is. Each kind says what an existing file at the path may hold to be replaced, and how new content
# is parsed before it is written.
KEY_KINDS = ("key", "ca_key")
CERT_KINDS = ("certificate", "ca_certificate", "archive")
REPORT_KINDS = ("report_json", "report_metrics", "report_html")
NOUNS = {
    "key": "a private key", "ca_key": "a CA private key", "certificate": "a certificate",
    "ca_certificate": "a CA certificate", "archive": "an archived certificate", "crl": "a CRL",
    "csr": "a certificate request", "pkcs8": "a PKCS#8 DER key", "pkcs12": "a PKCS#12 file",
    "registry": "the revocation registry (YAML)", "state": "the CA folder's state (JSON)",
    "loaded": "a record of the files a service last loaded (JSON)",
    "generation": "a generation number", "report_json": "a JSON audit report",
    "report_metrics": "a Prometheus textfile of the audit", "report_html": "an HTML audit report",
    "file": "a configuration file", "folder": "a folder", "snapshot": "a snapshot folder",
}
HTML_TITLE = b"<title>PostgreSQL TLS audit</title>"
JSON_SCHEMA_PREFIX = "pgtls.ssl/audit-report/"
_METRIC_LINE = re.compile(rb"^(# (HELP|TYPE) pgtls_\w+ .*|pgtls_\w+(\{.*\})? -?[0-9.eE+-]+|NaN|[+-]Inf)$")


def resolve(path: str) -> str:
    """The absolute path with ``..`` and the symbolic links of its folders resolved; the last part is kept as it is
    (an output that is a link is refused, never followed)."""
    absolute = os.path.abspath(path)
    head, tail = os.path.split(absolute)
    return os.path.join(os.path.realpath(head), tail) if tail else os.path.realpath(absolute)


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None


def _labels(data: bytes) -> set[str]:
    return {m.group(1).decode() for m in _LABEL.finditer(data[:MAX_CRL_BYTES])}


def content_class(data: bytes | None) -> str:
    """What a file holds, in one word: empty, key, certificate, crl, csr, der, text or binary."""
    if data is None or not data.strip():
        return "empty"
    labels = _labels(data)
    for kind in ("key", "crl", "csr", "certificate"):
        if labels & set(KINDS[kind]):
            return kind
    if labels:
        return "pem"
    if data[:1] == b"\x30":
        return "der"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "binary"
    return "text"


def _labelled(allowed: tuple[str, ...]) -> Callable[[bytes], bool]:
    return lambda data: bool(_labels(data)) and _labels(data) <= set(allowed)


def _is_der(data: bytes) -> bool:
    return data[:1] == b"\x30" and b"-----BEGIN" not in data


def _is_registry(data: bytes) -> bool:
    loaded = _yaml(data)
    return loaded is None or (isinstance(loaded, list) and all(isinstance(e, dict) for e in loaded))


def _is_report_json(data: bytes) -> bool:
    loaded = _json(data)
    return isinstance(loaded, dict) and str(loaded.get("schema", "")).startswith(JSON_SCHEMA_PREFIX)


# What an existing, non-blank file must hold to be replaced by (or kept as) each kind: the same kind, a damaged one
# included (repairs stay possible). A report never replaces a key; a certificate never replaces a CRL.
_ACCEPTS: dict[str, Callable[[bytes], bool]] = {
    **{kind: _labelled(KINDS["key"]) for kind in KEY_KINDS},
    **{kind: _labelled(KINDS["certificate"]) for kind in CERT_KINDS},
    "crl": _labelled(KINDS["crl"]),
    "csr": _labelled(KINDS["csr"]),
    "pkcs8": _is_der,
    "pkcs12": _is_der,
    "generation": lambda data: data.strip().isdigit(),
    "state": lambda data: isinstance(_json(data), dict),
    "loaded": lambda data: isinstance(_json(data), dict),
    "registry": _is_registry,
    "report_json": _is_report_json,
    "report_metrics": lambda data: all(_METRIC_LINE.match(line) for line in data.strip().splitlines()
                                       if line.strip()),
    "report_html": lambda data: HTML_TITLE in data,
    "file": lambda data: content_class(data) in ("text", "crl", "certificate"),
}


def replaceable(kind: str, data: bytes | None) -> bool:
    """May a file holding ``data`` be replaced by a file of ``kind``? Missing and blank files always; otherwise only
    a file of that same kind."""
    if data is None or not data.strip():
        return True
    accepts = _ACCEPTS.get(kind)
    return bool(accepts and accepts(data))


def _json(data: bytes):
    try:
        return json.loads(data)
    except ValueError:
        return None


def _yaml(data: bytes):
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML comes with ansible-core on the controller
        return None
    try:
        return yaml.safe_load(data)
    except yaml.YAMLError:
        return False


def _parse_key(data: bytes, where: str, passphrase: str | None):
    from .keys import load_private_key

    return load_private_key(data, passphrase, where)


def _parse_certificates(data: bytes, where: str, _passphrase=None):
    from . import compat

    return compat.load_certificates(data, where)


def _parse_crls(data: bytes, where: str, _passphrase=None):
    from . import compat

    return compat.load_crls(data, where)


def _parse_csr(data: bytes, where: str, _passphrase=None):
    from . import compat

    return compat.load_csr(data, where)


def _parse_pkcs8(data: bytes, where: str, _passphrase=None):
    from cryptography.hazmat.primitives import serialization

    from . import compat

    try:
        return serialization.load_der_private_key(data, password=None)
    except Exception as exc:  # cryptography's parser errors differ between releases
        raise PkiError(f"is not a PKCS#8 DER key: {compat.parser_message(exc)}", where=where) from None


def _parse_pkcs12(data: bytes, where: str, passphrase: str | None):
    from cryptography.hazmat.primitives.serialization import pkcs12

    from . import compat

    try:
        pkcs12.load_key_and_certificates(data, (passphrase or "").encode())
    except Exception as exc:  # as above
        raise PkiError(f"is not a PKCS#12 file that opens with its passphrase: {compat.parser_message(exc)}",
                       where=where) from None


def _parse_json(data: bytes, where: str, _passphrase=None):
    if not isinstance(_json(data), dict):
        raise PkiError("is not a JSON object", where=where)


def _parse_registry(data: bytes, where: str, _passphrase=None):
    if not _is_registry(data):
        raise PkiError("is not a YAML list of revocations", where=where)


def _parse_generation(data: bytes, where: str, _passphrase=None):
    if not data.strip().isdigit():
        raise PkiError("is not a generation number", where=where)


def _whole_pem(data: bytes, where: str) -> None:
    """Every PEM block begun is ended: a file cut short is refused, even when an earlier block in it is whole."""
    begun = len(re.findall(rb"-----BEGIN [A-Z0-9 ]{1,40}-----", data))
    ended = len(re.findall(rb"-----END [A-Z0-9 ]{1,40}-----", data))
    if begun != ended:
        raise PkiError(f"holds {begun} PEM block(s) begun but {ended} ended: it was cut short (truncated)",
                       where=where)


_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _parse_file(data: bytes, where: str, _passphrase=None):
    if _CONTROL.search(data):
        raise PkiError("holds control characters: a configuration file is text", where=where)
    found = content_class(data)
    if found == "crl":
        return _parse_crls(data, where)
    if found == "certificate":
        return _parse_certificates(data, where)
    if found not in ("text", "empty"):
        raise PkiError(f"holds {describe(data)}: only text, certificates and CRLs are written as files (keys are "
                       "made where they are used)", where=where)
    return None


# How new content of each kind is parsed before it is written (the loaded object is returned for the relations:
# a key matching its certificate, a certificate or CRL signed by its issuer).
_PARSERS: dict[str, Callable] = {
    **{kind: _parse_key for kind in KEY_KINDS},
    **{kind: _parse_certificates for kind in CERT_KINDS},
    "crl": _parse_crls, "csr": _parse_csr, "pkcs8": _parse_pkcs8, "pkcs12": _parse_pkcs12,
    "state": _parse_json, "loaded": _parse_json, "report_json": _parse_json, "registry": _parse_registry,
    "generation": _parse_generation,
    "file": _parse_file,
}


def _parse(kind: str, data: bytes, where: str, passphrase: str | None) -> object:
    """Parse new content as its kind; return the loaded object (certificates: the list) or None."""
    parser = _PARSERS.get(kind)
    return parser(data, where, passphrase) if parser else None


@dataclass
class Step:
    op: str  # write, keep, attrs, mkdir, move, delete, snapshot
    path: str
    real: str
    kind: str
    where: str
    data: bytes | None = None
    attrs: Attrs | None = None
    source: str | None = None
    because: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.where} ({self.path})"


class Plan:
    """What one writer will do, declared before it does anything (see the module's docstring)."""

    def __init__(self, writer: str, ca_folders: Iterable[str | None] = ()) -> None:
        self.writer = writer
        self.steps: list[Step] = []
        self.comparing = False  # steps declared meanwhile are checked and compared, never applied
        given = [f for f in ca_folders if f]
        self.ca_folders = {os.path.realpath(f) for f in given}
        # The ways into each CA folder that the writer was given (the folder's own path, or a link to it it named).
        self._entries = {os.path.realpath(f): {os.path.normpath(os.path.abspath(f)), os.path.realpath(f)}
                         for f in given}
        self.inputs: dict[str, str] = {}
        self.protected: list[tuple[str, str]] = []
        self._claims: dict[str, Step] = {}
        self._detected: dict[str, bool] = {}
        self.applied: list[str] = []

    # Reads see the plan ----------------------------------------------------------------------------------------
    def _claim_of(self, path: str) -> Step | None:
        return self._claims.get(resolve(path))

    @staticmethod
    def resolve(path: str) -> str:
        return resolve(path)

    def claimed(self, path: str) -> bool:
        """Does a step of the plan (not a mere claim) already name ``path``?"""
        step = self._claim_of(path)
        return step is not None and not step.extra.get("claim")

    def read(self, path: str, where: str, *, missing_ok: bool = False, limit: int = MAX_CRL_BYTES,
             nofollow: bool = False) -> bytes | None:
        step = self._claim_of(path)
        if step is not None and step.op in ("write", "move"):
            return step.data if step.op == "write" else step.extra["data"]
        if (step is not None and step.op == "delete") or self._moved_away(path):
            if missing_ok:
                return None
            raise PkiError(f"file {path} does not exist", where=where)
        return read_bytes(path, where, missing_ok=missing_ok, limit=limit, nofollow=nofollow)

    def certificates(self, path: str, where: str) -> list:
        """The certificates of ``path`` as this run sees it; an empty file is refused."""
        from . import compat  # the planner itself needs no cryptography

        data = self.read(path, where)
        if not data or not data.strip():
            raise PkiError(f"{path} is empty: a certificate was expected", where=where)
        return compat.load_certificates(data, f"{where} ({path})")

    def _moved_away(self, path: str) -> bool:
        real = resolve(path)
        return any(s.op == "move" and s.source == real for s in self.steps)

    def exists(self, path: str) -> bool:
        step = self._claim_of(path)
        if step is not None and not step.extra.get("claim"):
            return step.op not in ("delete",)
        if self._moved_away(path):
            return False
        return os.path.lexists(path)

    def isdir(self, path: str) -> bool:
        step = self._claim_of(path)
        if step is not None and not step.extra.get("claim"):
            return step.kind == "folder" and step.op in ("mkdir", "keep", "attrs")
        return os.path.isdir(path)

    def listdir(self, folder: str) -> list[str]:
        """The names in ``folder`` as they will be: planned files and moves in, deletions and moves out."""
        real = resolve(folder)
        names = set()
        if os.path.isdir(folder) and not os.path.islink(folder):
            names = set(os.listdir(folder))
        for step in self.steps:
            if os.path.dirname(step.real) == real:
                if step.op == "delete":
                    names.discard(os.path.basename(step.real))
                else:
                    names.add(os.path.basename(step.real))
            if step.op == "move" and os.path.dirname(step.source) == real:
                names.discard(os.path.basename(step.source))
        return sorted(names)

    # Declarations ----------------------------------------------------------------------------------------------
    def input(self, path: str | None, where: str) -> None:
        """An option names a file this run reads: no later output may be that file. (An output of an earlier step
        of the same plan, read by a later one - the ca_folder's root.crl in crl.pem - is the plan's own file.)"""
        if path and resolve(path) not in self._claims:
            self.inputs.setdefault(resolve(path), where)

    def protect(self, paths: Iterable[str], where: str) -> None:
        """The files a snapshot protects (checked with the plan: regular files or missing, whether or not this run
        takes the snapshot - a link or a folder is never copied or restored)."""
        self.protected += [(path, f"{where}[{index}]") for index, path in enumerate(paths)]

    def options(self, outputs: dict[str, str | None], inputs: dict[str, str | None] | None = None) -> None:
        """The file options of a run, before anything is read: two that name one file are refused at once (after
        ``..`` and symbolic links), and the inputs are remembered (no output may be one of them)."""
        check_distinct({**outputs, **(inputs or {})})
        for where, path in (inputs or {}).items():
            self.input(path, where)

    @contextlib.contextmanager
    def compare_only(self):
        """Steps declared in this block are checked like the others and say what would change, but ``apply()``
        leaves them out (cluster_files asks first, then writes in a second execution)."""
        self.comparing = True
        try:
            yield
        finally:
            self.comparing = False

    def _add(self, step: Step) -> Step:
        step.extra.setdefault("compare_only", self.comparing)
        earlier = self._claims.get(step.real)
        if earlier is not None and earlier.extra.get("claim") and earlier.where == step.where:
            # A claim made early (what a later stage writes) is taken up by the step that writes it.
            self.steps.remove(earlier)
            del self._claims[earlier.real]
            earlier = None
        if earlier is not None:
            same = "" if os.path.normpath(earlier.path) == os.path.normpath(step.path) else f" ({step.real})"
            raise PkiError(f"{step.path} is the same file as {earlier.where}{same}: each output needs its own file",
                           where=step.where)
        # What a path is and where it lies is checked at once, before the run reads on: a link, a folder where a file
        # goes, a file of another kind, or a CA folder's file the writer does not own stops it here, naming the
        # option (the content and what depends on the whole plan are checked by check()).
        self._check_ca_folder(step)
        if step.op in ("write", "attrs", "keep", "mkdir"):
            self._check_existing(step)
        self._claims[step.real] = step
        self.steps.append(step)
        return step

    def write(self, path: str, data: bytes, attrs: Attrs, *, kind: str, where: str, passphrase: str | None = None,
              matches: str | None = None, issued_by=None, signed_by=None, again: bool = False,
              source: str | None = None) -> list[str]:
        """Make ``path`` hold ``data`` with ``attrs``; returns what changes (empty when nothing does). The path is
        claimed either way: no other output of the run may name it. ``again``: a later step of the same writer
        declares the same output anew (state.json after each CRL), replacing its earlier declaration."""
        earlier = self._claims.get(resolve(path))
        if again and earlier is not None and earlier.where == where:
            self.steps.remove(earlier)
            del self._claims[earlier.real]
        current = self._current(path, where)
        extra = {"passphrase": passphrase, "matches": matches, "issued_by": issued_by, "signed_by": signed_by,
                 "source": source}
        if current is not None and current == data:
            changes = differences(path, attrs)
            self._add(Step("attrs" if changes else "keep", path, resolve(path), kind, where, data, attrs,
                           extra=extra))
            return changes
        self._add(Step("write", path, resolve(path), kind, where, data, attrs, extra=extra,
                       because="created" if current is None else "content changed"))
        return ["created" if current is None else "content changed"]

    def keep(self, path: str, attrs: Attrs | None, *, kind: str, where: str) -> list[str]:
        """Claim a file that stays as it is, but for its owner and mode. A file this plan already writes (as the
        same kind: the ca_folder's CA given as content) gets ``attrs`` in that write instead."""
        earlier = self._claims.get(resolve(path))
        if earlier is not None and earlier.op == "write" and earlier.kind == kind and attrs is not None:
            earlier.attrs = attrs
            return []
        changes = differences(path, attrs) if attrs is not None else []
        self._add(Step("attrs" if changes else "keep", path, resolve(path), kind, where, attrs=attrs))
        return changes

    def claim(self, path: str, *, kind: str, where: str) -> None:
        """A file this run may write later (a later stage, another execution): nothing changes now, but no other
        output may name it, and what it holds now must be of ``kind``. A step of the same option that writes it
        later in the plan takes the claim's place; a file the plan already writes as that kind needs no claim."""
        earlier = self._claims.get(resolve(path))
        if earlier is not None and not earlier.extra.get("claim") and earlier.kind == kind:
            return
        self._add(Step("keep", path, resolve(path), kind, where, extra={"claim": True}))

    def mkdir(self, path: str, attrs: Attrs, *, where: str, files: dict[str, bytes] | None = None) -> list[str]:
        """Make a folder (its parent must exist or be made earlier in the plan), or fix an existing one's owner and
        mode. ``files``: the folder appears with these files in it, at once (made as a temporary folder, then
        renamed), so a run killed in between never leaves it without them."""
        earlier = self._claims.get(resolve(path))
        if earlier is not None and earlier.kind == "folder" and earlier.extra.get("claim"):
            # A folder claimed for a later stage (inspection's directories) and made now: the making takes its place.
            self.steps.remove(earlier)
            del self._claims[earlier.real]
            earlier = None
        if earlier is not None and earlier.kind == "folder" and not files and not earlier.extra.get("files"):
            # One folder named twice (cluster_files' directories and the key's folder): one folder, made with the
            # first declaration's owner and mode; made for real when any of its declarations is.
            earlier.extra["compare_only"] = earlier.extra.get("compare_only") and self.comparing
            return []
        st = _lstat(path)
        if st is not None and stat.S_ISDIR(st.st_mode) and not files:
            changes = differences(path, attrs)
            self._add(Step("attrs" if changes else "keep", path, resolve(path), "folder", where, attrs=attrs))
            return changes
        self._add(Step("mkdir", path, resolve(path), "folder", where, attrs=attrs, extra={"files": files or {}}))
        return ["created"]

    def folders(self, path: str, attrs: Attrs, *, where: str, base: str | None = None) -> None:
        """Make ``path`` and the folders above it that are missing (``mkdir -p``). ``base``: the folder an option
        names, at or above ``path``; it and every folder between it and ``path`` must be real folders, not links."""
        if base:
            here = os.path.abspath(path)
            top = os.path.abspath(base)
            while True:
                st = _lstat(here)
                if st is not None and (stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode)):
                    what = f"a symbolic link (to {os.readlink(here)})" if stat.S_ISLNK(st.st_mode) else "not a folder"
                    raise PkiError(f"{here} is {what}: pgtls.ssl writes in real folders only", where=where)
                if here == top or os.path.dirname(here) == here:
                    break
                here = os.path.dirname(here)
        missing = []
        here = os.path.abspath(path)
        while not self.isdir(here) and not os.path.lexists(here):
            missing.append(here)
            parent = os.path.dirname(here)
            if parent == here:
                break
            here = parent
        for folder in reversed(missing):
            self.mkdir(folder, attrs, where=where)

    def move(self, source: str, dest: str, *, kind: str, where: str, replace: bool = False) -> None:
        """Rename ``source`` to ``dest`` (same file system). ``replace``: ``dest`` may exist and is replaced (a
        pending key taking its key's place)."""
        data = self.read(source, where, nofollow=True)
        self._add(Step("move", dest, resolve(dest), kind, where, source=resolve(source),
                       extra={"data": data, "replace": replace, "source_path": source}))

    def delete(self, path: str, *, kind: str, where: str, because: str) -> None:
        """Remove a file (or a snapshot folder) that pgtls.ssl made; ``because`` says how that is known:
        ``snapshot`` (a snapshot folder, by its marker), ``absent-before`` (the run's snapshot recorded the file as
        absent), ``rotation`` (a CA file of an intermediate rotation step, in ``previous/``)."""
        self._add(Step("delete", path, resolve(path), kind, where, because=because))

    def snapshot(self, folder: str, paths: list[str], gid: int | None, *, where: str) -> None:
        """Copies of ``paths`` (those that exist) in ``folder``, which is made anew (an earlier snapshot there is
        replaced; anything else in the way is refused)."""
        extra = {"paths": list(paths), "gid": gid}
        self._add(Step("snapshot", folder, resolve(folder), "snapshot", where, extra=extra))

    @property
    def changes(self) -> list[Step]:
        """The steps that change something when applied (compared-only steps left out)."""
        return [s for s in self.steps if s.op != "keep" and not s.extra.get("compare_only")]

    def _current(self, path: str, where: str) -> bytes | None:
        st = _lstat(path)
        if st is None:
            return None
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
            return None  # refused by check(), with the reason
        return read_bytes(path, where, missing_ok=True, limit=MAX_CRL_BYTES, nofollow=True)

    # The checks ------------------------------------------------------------------------------------------------
    def check(self) -> None:
        claimed = {s.real: s for s in self.steps}
        for step in self.steps:
            other = self.inputs.get(step.real)
            if other is not None and other != step.where:
                raise PkiError(f"{step.path} is also read as {other}: an output must not be one of the run's inputs",
                               where=step.where)
            self._check_place(step, claimed)
            if step.op == "write":
                self._check_content(step)
            elif step.op == "move":
                self._check_move(step)
            elif step.op == "delete":
                self._check_delete(step)
            elif step.op == "snapshot":
                self._check_snapshot(step, claimed)
        for path, where in self.protected:
            st = _lstat(path)
            if st is not None and not stat.S_ISREG(st.st_mode):
                raise PkiError(f"{path} is {describe_entry(path)}, not a regular file: a snapshot protects regular "
                               "files only", where=where)

    def _check_place(self, step: Step, claimed: dict[str, Step]) -> None:
        """A file never goes where a folder is declared and the reverse; the folder to write in exists or is made
        earlier in the plan, and can be written."""
        folder = os.path.dirname(step.real)
        parent = claimed.get(folder)
        if parent is not None and parent.op not in ("mkdir",) and parent.kind not in ("folder", "snapshot"):
            raise PkiError(f"{step.path} would be inside {parent.path}, which {parent.where} names as a file",
                           where=step.where)
        if step.op in ("keep", "attrs", "delete") and not step.extra.get("claim"):
            return
        if parent is not None and (parent.op == "mkdir" or (step.extra.get("claim") and parent.extra.get("claim"))):
            return  # made earlier in the plan, or a claim in a folder claimed for a later stage to make
        st = _lstat(folder)
        if st is None or not stat.S_ISDIR(st.st_mode):
            what = "does not exist" if st is None else f"is not a folder ({describe_entry(folder)})"
            raise PkiError(f"folder {os.path.dirname(os.path.abspath(step.path))} {what} (for {step.path})",
                           where=step.where)
        problem = not_writable(folder)
        if problem:
            raise PkiError(f"cannot write in {folder}: {problem}", where=step.where)
        if os.path.isfile(step.real) and not os.path.islink(step.real) and not os.access(step.real, os.W_OK):
            raise PkiError(f"cannot replace {step.path}: it is not writable (immutable or read-only)",
                           where=step.where)

    def _check_existing(self, step: Step) -> None:
        st = _lstat(step.path)
        if st is None:
            if step.op in ("keep", "attrs") and step.kind != "folder" and not step.extra.get("claim"):
                raise PkiError(f"file {step.path} does not exist", where=step.where)
            return
        if step.kind == "snapshot":
            _refuse_unless_snapshot(step, "use it as a snapshot folder")
            return
        if stat.S_ISLNK(st.st_mode):
            raise PkiError(f"{step.path} is a symbolic link (to {os.readlink(step.path)}): pgtls.ssl writes real "
                           "files only and never follows a link at an output; point the option at the real file",
                           where=step.where)
        if step.kind == "folder":
            if not stat.S_ISDIR(st.st_mode):
                raise PkiError(f"{step.path} exists and is not a folder ({describe_entry(step.path)})",
                               where=step.where)
            return
        if stat.S_ISDIR(st.st_mode):
            raise PkiError(f"{step.path} is a folder, not a file ({NOUNS.get(step.kind, step.kind)} goes there)",
                           where=step.where)
        if not stat.S_ISREG(st.st_mode):
            raise PkiError(f"{step.path} exists but is not a regular file", where=step.where)
        if step.op in ("write", "keep", "attrs"):
            current = read_bytes(step.path, step.where, missing_ok=True, limit=MAX_CRL_BYTES, nofollow=True)
            if step.kind == "archive" and current and step.op == "write":
                raise PkiError(f"{step.path} already holds another certificate: an archived certificate is never "
                               "replaced", where=step.where)
            if not replaceable(step.kind, current):
                verb = "replace it" if step.op == "write" or step.extra.get("claim") else "take it as such"
                raise PkiError(f"{step.path} already exists and holds {describe_file(current)}, not "
                               f"{NOUNS.get(step.kind, step.kind)}; refusing to {verb} (point the option at "
                               "another file, or move that file away)", where=step.where)

    def _check_content(self, step: Step) -> None:
        source = step.extra.get("source")
        label = f"{source} (for {step.path})" if source else step.label
        _whole_pem(step.data, label)
        loaded = _parse(step.kind, step.data, label, step.extra.get("passphrase"))
        from .keys import same_public_key

        matches = step.extra.get("matches")
        if matches is not None:
            from . import compat

            cert_data = self.read(matches, step.where, missing_ok=True)
            if cert_data:
                leaf = compat.load_certificates(cert_data, f"{step.where} ({matches})")[0]
                if not same_public_key(leaf.public_key(), loaded):
                    raise PkiError(f"the key does not match the certificate {matches}", where=step.where)
        issued_by = step.extra.get("issued_by")
        if issued_by is not None and loaded:
            from .issue import signed_by

            if not signed_by(loaded[0], issued_by):
                raise PkiError(f"{step.path}: the certificate was not issued by {issued_by.subject.rfc4514_string()}",
                               where=step.where)
        signer = step.extra.get("signed_by")
        if signer is not None and loaded:
            from .crls import crl_signed_by

            if not crl_signed_by(loaded[0], signer):
                raise PkiError(f"{step.path}: the CRL was not signed by {signer.subject.rfc4514_string()}",
                               where=step.where)

    def _check_move(self, step: Step) -> None:
        st = _lstat(step.source)
        if st is None or stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
            what = "does not exist" if st is None else "is not a regular file"
            raise PkiError(f"{step.extra['source_path']} {what}: only a regular file is moved", where=step.where)
        target = _lstat(step.real)
        if target is not None:
            if stat.S_ISLNK(target.st_mode) or not stat.S_ISREG(target.st_mode):
                raise PkiError(f"{step.path} exists and is not a regular file", where=step.where)
            if not step.extra["replace"]:
                raise PkiError(f"{step.path} already exists: refusing to replace it by "
                               f"{step.extra['source_path']}", where=step.where)
            current = read_bytes(step.real, step.where, limit=MAX_CRL_BYTES, nofollow=True)
            if not replaceable(step.kind, current):
                raise PkiError(f"{step.path} holds {describe_file(current)}, not {NOUNS.get(step.kind, step.kind)}",
                               where=step.where)
        if os.stat(os.path.dirname(step.source)).st_dev != os.stat(_existing_ancestor(step.real)).st_dev:
            raise PkiError(f"{step.extra['source_path']} and {step.path} are on different file systems",
                           where=step.where)

    def _check_delete(self, step: Step) -> None:
        from .layout import ROTATION_WRITERS

        st = _lstat(step.path)
        if st is None:
            return
        if step.because in ("snapshot", "legacy-snapshot"):
            _refuse_unless_snapshot(step, "delete it")
            return
        if step.kind == "folder" and step.because == "rotation" and stat.S_ISDIR(st.st_mode):
            # A killed run's temporaries go before anything is applied (tidy_temporaries).
            left = [n for n in os.listdir(step.path) if os.path.join(step.real, n) not in self._deleted()
                    and not n.startswith(TMP_PREFIX)]
            if left:
                raise PkiError(f"{step.path} holds {', '.join(sorted(left))}, which the run does not remove: "
                               "refusing to remove the folder (move those out)", where=step.where)
            if self.writer in ROTATION_WRITERS:
                return
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
            raise PkiError(f"{step.path} is not a regular file: refusing to delete it", where=step.where)
        if step.because == "absent-before":
            return  # restore: the snapshot's marker listed it and has no copy of it
        if step.because == "rotation" and self.writer in ROTATION_WRITERS:
            return  # in previous/ or previous-root/, owned by the rotation (checked by _check_ca_folder)
        raise PkiError(f"{step.path} was not made by this run: refusing to delete it", where=step.where)

    def _deleted(self) -> set[str]:
        return {s.real for s in self.steps if s.op == "delete"} | {s.source for s in self.steps if s.op == "move"}

    def _check_snapshot(self, step: Step, claimed: dict[str, Step]) -> None:
        st = _lstat(step.path)
        if st is not None:
            problem = not_a_snapshot(step.path)
            if problem:
                raise PkiError(f"{step.path} {problem}; refusing to replace it by a snapshot (point snapshot_dir "
                               "at a folder of its own)", where=step.where)
        else:
            self._check_place(dataclass_replace(step, op="write"), claimed)
        for index, path in enumerate(step.extra["paths"]):
            found = _lstat(path)
            if found is not None and not stat.S_ISREG(found.st_mode):
                raise PkiError(f"{path} is not a regular file: refusing to snapshot it",
                               where=f"snapshot_paths[{index}]")

    def _check_ca_folder(self, step: Step) -> None:
        for real, named in ((step.real, step.path), (step.source, step.extra.get("source_path"))):
            if real is None:
                continue
            folder = self._ca_folder_of(real)
            if folder is None:
                continue
            given = os.path.normpath(os.path.abspath(named))
            entries = self._entries.get(folder, {folder})
            if not any(given == entry or given.startswith(entry.rstrip(os.sep) + os.sep) for entry in entries):
                raise PkiError(f"{step.path} reaches the CA folder {folder} through a symbolic link: pgtls.ssl writes "
                               "in a CA folder only by its own path", where=step.where)
            relative = os.path.relpath(real, folder)
            here = folder
            for part in relative.split(os.sep)[:-1]:
                here = os.path.join(here, part)
                st = _lstat(here)
                if st is not None and stat.S_ISLNK(st.st_mode):
                    raise PkiError(f"{here} is a symbolic link inside the CA folder {folder}: pgtls.ssl never writes "
                                   "through a link there (replace it by a real folder)", where=step.where)
            from .layout import Layout

            owners = Layout(folder).owners(relative) if relative != "." else frozenset({"ca_folder"})
            if self.writer not in owners:
                what = Layout(folder).describe(relative) if relative != "." else "the folder itself"
                raise PkiError(f"{step.path} is {what} of the CA folder {folder}, which {self.writer} does not "
                               "write; point the option outside the CA folder", where=step.where)

    def _ca_folder_of(self, real: str) -> str | None:
        folder = real if os.path.isdir(real) and not os.path.islink(real) else os.path.dirname(real)
        from .layout import ROOT_FOLDERS

        while True:
            if folder in self.ca_folders or self._is_ca_folder(folder):
                parent = os.path.dirname(folder)
                # A root rotation's next-root/ and previous-root/ hold a root and its key too: their CA folder is the
                # one they are in.
                inside = parent in self.ca_folders or self._is_ca_folder(parent)
                if os.path.basename(folder) in ROOT_FOLDERS and inside:
                    return parent
                return folder
            parent = os.path.dirname(folder)
            if parent == folder:
                return None
            folder = parent

    def _is_ca_folder(self, folder: str) -> bool:
        if folder not in self._detected:
            self._detected[folder] = is_ca_folder(folder)
        return self._detected[folder]

    # Applying --------------------------------------------------------------------------------------------------
    def apply(self) -> None:
        """Run the steps: the folders to make first, then the snapshot (of the files as they are before any of them
        changes), then the rest in the order declared. The new content of every file is first written to a
        temporary beside it (``files.stage_file``), all of them before the first rename: a write that fails then changes
        nothing, and the renames follow one another with no write or fsync between them, so the files of one run
        (a key and its certificate) change together as nearly as two renames can; the folders are fsync'd after.
        A failure names what was done before it."""
        steps = self.changes
        head = [s for s in steps if s.op == "mkdir"] + [s for s in steps if s.op == "snapshot"]
        rest = [s for s in steps if s.op not in ("mkdir", "snapshot")]
        for step in head:
            self._applied(step, {}, set())
        staged: dict[int, str] = {}
        touched: set[str] = set()
        try:
            for step in rest:
                if step.op == "write" and os.path.isdir(os.path.dirname(os.path.abspath(step.path))):
                    staged[id(step)] = stage_file(step.path, step.data, step.attrs, step.where)
            for step in rest:
                self._applied(step, staged, touched)
        finally:
            for tmp in staged.values():
                discard_staged(tmp)
        for folder in sorted(touched):
            fsync_folder(folder)

    def _applied(self, step: Step, staged: dict[int, str], touched: set[str]) -> None:
        try:
            self._apply(step, staged, touched)
        except OSError as exc:
            done = "; ".join(self.applied) or "nothing"
            raise PkiError(f"cannot {step.op} {step.path}: {exc.strerror} (done before it: {done})",
                           where=step.where) from None
        if step.op != "keep":
            self.applied.append(f"{step.op} {step.path}")

    def _apply(self, step: Step, staged: dict[int, str], touched: set[str]) -> None:
        if step.op == "write" and id(step) in staged:
            os.rename(staged.pop(id(step)), step.path)
            touched.add(os.path.dirname(os.path.abspath(step.path)))
        elif step.op == "write":
            write_atomic(step.path, step.data, step.attrs, step.where)
        elif step.op == "attrs":
            apply_attributes(step.path, step.attrs)
        elif step.op == "mkdir":
            _make_folder(step.path, step.attrs, step.extra.get("files") or {})
        elif step.op == "move":
            os.rename(step.source, step.real)
            touched.add(os.path.dirname(step.real))
        elif step.op == "delete":
            if not os.path.lexists(step.path):
                return
            if step.because in ("snapshot", "legacy-snapshot") and os.path.isdir(step.path):
                _remove_folder(step.path)
            elif step.kind == "folder":
                os.rmdir(step.path)
            else:
                os.unlink(step.path)
        elif step.op == "snapshot":
            _take_snapshot(step.path, step.extra["paths"], step.extra["gid"], step.where)


def _make_folder(path: str, attrs: Attrs, files: dict[str, bytes]) -> None:
    if not files:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            if os.path.islink(path) or not os.path.isdir(path):
                raise
            return  # another run made it a moment ago (two archive records at once): it is the folder wanted
        apply_attributes(path, attrs)
        return
    folder = os.path.dirname(os.path.abspath(path))
    staging = os.path.join(folder, f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(6)}")
    os.mkdir(staging, 0o700)
    try:
        for name, data in files.items():
            write_atomic(os.path.join(staging, name), data, Attrs(0o600, attrs.uid, attrs.gid), "files")
        apply_attributes(staging, attrs)
        os.rename(staging, path)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    fsync_folder(folder)


def _existing_ancestor(path: str) -> str:
    folder = os.path.dirname(path)
    while not os.path.isdir(folder):
        folder = os.path.dirname(folder)
    return folder


def _refuse_unless_snapshot(step: Step, doing: str) -> None:
    """A snapshot folder pgtls.ssl made (a legacy one of a release before 0.2, where the step says so), or nothing."""
    legacy = step.because == "legacy-snapshot"
    problem = not_a_legacy_snapshot(step.path) if legacy else not_a_snapshot(step.path)
    if problem:
        hint = "" if legacy else " (point the option at a folder of its own)"
        raise PkiError(f"{step.path} {problem}; refusing to {doing}{hint}", where=step.where)


def dataclass_replace(step: Step, **changes) -> Step:
    values = dict(step.__dict__)
    values.update(changes)
    return Step(**values)


def describe_entry(path: str) -> str:
    st = _lstat(path)
    if st is None:
        return "missing"
    if stat.S_ISLNK(st.st_mode):
        return "a symbolic link"
    if stat.S_ISDIR(st.st_mode):
        return "a folder"
    return "a file" if stat.S_ISREG(st.st_mode) else "a special file"


def describe_file(data: bytes | None) -> str:
    found = content_class(data)
    if found == "text":
        loaded = _json(data)
        if isinstance(loaded, dict):
            return "a JSON document"
        return "text" + (" (an HTML page)" if b"<html" in data[:4096].lower() else "")
    return describe(data)


def links_in(folder: str, limit: int = 100000) -> list[str]:
    """The symbolic links anywhere in ``folder`` (a CA folder holds none), up to ``limit`` entries looked at."""
    found = []
    seen = 0
    for base, dirs, files in os.walk(folder):
        for name in dirs + files:
            seen += 1
            if os.path.islink(os.path.join(base, name)):
                found.append(os.path.join(base, name))
        if seen > limit:
            break
    return found


def check_ca_folder(folder: str | None, where: str) -> None:
    """Refuse a CA folder option that is not a folder or that holds a symbolic link (every module that is given a
    CA folder: a link inside one would read or write material outside it)."""
    if not folder or not os.path.lexists(folder):
        return
    if not os.path.isdir(folder):
        raise PkiError(f"{folder} exists and is not a folder: the option names a CA folder", where=where)
    links = links_in(folder)
    if links:
        raise PkiError(f"{links[0]} is a symbolic link (to {os.readlink(links[0])}) inside the CA folder {folder}: a "
                       "CA folder holds real files and folders only (replace the link by what it points to)",
                       where=where)


def is_ca_folder(folder: str) -> bool:
    """A folder holding a CA: ``root.crt`` and a CA key under the layout's names (what the ca_folder module and the
    ca module make); a server's or client's folder holds root.crt but never those keys."""
    return os.path.isfile(os.path.join(folder, "root.crt")) and any(
        os.path.lexists(os.path.join(folder, name)) for name in ("root.key", "intermediate.key"))


def not_writable(folder: str) -> str | None:
    """Why this process cannot create a file in ``folder`` (None when it can): checked before the first write, so a
    read-only folder fails the run before anything changed."""
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return "the file system is mounted read-only"
    except OSError:
        pass
    if not os.access(folder, os.W_OK | os.X_OK):
        return "no write permission"
    return None


def not_a_snapshot(path: str) -> str | None:
    """None when ``path`` is a snapshot folder pgtls.ssl made (its marker, and copies only), else why not."""
    st = _lstat(path)
    if st is None:
        return None
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        return "is a symbolic link" if stat.S_ISLNK(st.st_mode) else "exists and is not a folder"
    names = os.listdir(path)
    others = [n for n in names if not stat.S_ISREG(os.lstat(os.path.join(path, n)).st_mode)]
    if others:
        return f"holds {others[0]}, which is not a copy pgtls.ssl made"
    # Snapshots of 0.2 have no marker: copies only, each named for an absolute path (none: an empty folder, which
    # holds nothing to lose). One that an earlier release was killed taking holds copies and perhaps the
    # temporary of its marker.
    if SNAPSHOT_MARKER not in names and not all(n.startswith("_") or is_temporary(n) for n in names):
        return f"exists and is not a snapshot pgtls.ssl made (no {SNAPSHOT_MARKER} in it)"
    return None


LEGACY_SNAPSHOT = re.compile(r"^ansible\.[^/]+\.pgtls$")
LEGACY_AGE = 3600


def not_a_legacy_snapshot(path: str) -> str | None:
    """None when ``path`` is a snapshot of a release before 0.2 that a killed run left: ``/tmp/ansible.*.pgtls``,
    root's, untouched for an hour (not a run in progress), holding copies only."""
    st = _lstat(path)
    if st is None:
        return None
    if not LEGACY_SNAPSHOT.match(os.path.basename(path)) or not stat.S_ISDIR(st.st_mode) or st.st_uid != 0:
        return "is not a root-owned ansible.*.pgtls folder"
    if time.time() - st.st_mtime <= LEGACY_AGE:
        return "was changed within the last hour (a run may be using it)"
    if any(not stat.S_ISREG(os.lstat(os.path.join(path, n)).st_mode) for n in os.listdir(path)):
        return "holds something other than copies of files"
    return None


def copy_name(path: str) -> str:
    """A copy's name in a snapshot folder: the path with ``/`` as ``_``."""
    return path.replace("/", "_")


def _staging(folder: str) -> str:
    """A temporary name beside ``folder`` (files.remove_stale_temporaries removes it once this process is gone)."""
    return os.path.join(os.path.dirname(os.path.abspath(folder)), f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(6)}")


def remove_temporaries_beside(path: str) -> None:
    """Remove the temporaries of runs that are gone from the folder holding ``path`` (a snapshot's, where a run
    killed while taking or removing it leaves one; files.remove_stale_temporaries)."""
    remove_stale_temporaries(os.path.dirname(os.path.abspath(path)))


def _remove_folder(folder: str) -> None:
    """Remove a folder whole as one step: renamed aside first, so a run killed while removing it leaves either the
    complete folder or a temporary the next run removes, never a folder with part of its files."""
    parent = os.path.dirname(os.path.abspath(folder))
    aside = _staging(folder)
    os.rename(folder, aside)
    fsync_folder(parent)
    shutil.rmtree(aside)
    remove_stale_temporaries(parent)


def _take_snapshot(folder: str, paths: list[str], gid: int | None, where: str) -> None:
    """Build the snapshot under a temporary name beside ``folder``, its marker last, then rename it into place (an
    earlier snapshot renamed aside first): a run killed at any point leaves the earlier snapshot, none, or the complete
    new one, and temporaries the next run removes."""
    parent = os.path.dirname(os.path.abspath(folder))
    remove_stale_temporaries(parent)
    staging = _staging(folder)
    os.mkdir(staging, 0o700)
    try:
        os.chown(staging, 0, -1 if gid is None else gid)
        for path in paths:
            st = _lstat(path)
            if st is None:
                continue
            target = os.path.join(staging, copy_name(path))
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                os.fchown(fd, st.st_uid, st.st_gid)
                os.fchmod(fd, stat.S_IMODE(st.st_mode))
                with open(path, "rb") as source, os.fdopen(fd, "wb") as copy:
                    fd = -1
                    shutil.copyfileobj(source, copy)
                    copy.flush()
                    os.fsync(copy.fileno())
            finally:
                if fd >= 0:
                    os.close(fd)
            os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
        marker = json.dumps({"paths": paths}, indent=1).encode()
        write_atomic(os.path.join(staging, SNAPSHOT_MARKER), marker, Attrs(0o600, 0, gid), where)
        os.chmod(staging, 0o750)
        if os.path.lexists(folder):
            _remove_folder(folder)  # checked to be a snapshot (Plan.check)
        os.rename(staging, folder)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    fsync_folder(parent)


def snapshot_paths(folder: str) -> list[str] | None:
    """The paths a snapshot folder protects (its marker), or None when there is no complete snapshot."""
    data = read_bytes(os.path.join(folder, SNAPSHOT_MARKER), "snapshot_dir", missing_ok=True, nofollow=True)
    loaded = _json(data) if data else None
    if not isinstance(loaded, dict) or not isinstance(loaded.get("paths"), list):
        return None
    return [str(p) for p in loaded["paths"]]


# The flow every writer shares --------------------------------------------------------------------------------------
def run(writer: str, build: Callable[[Plan], dict], check_mode: bool, *, lock: str | None = None,
        lock_timeout: float = 120, ca_folders: Iterable[str | None] = ()) -> dict:
    """``build(plan)`` reads what is there, declares every output and returns the result; the plan is checked, then
    applied unless in check mode. With ``lock`` (a CA folder), the reads, the check and the writes happen under its
    lock, so what a concurrent run does is never seen half-done; only a folder that has no lock file yet (its first
    run) is planned once without it first, so bad input fails before the lock file is made."""
    if lock and not os.path.isfile(os.path.join(lock, LOCK_NAME)):
        plan = Plan(writer, ca_folders)
        result = build(plan)
        plan.check()
        if check_mode or not plan.changes:
            return result
    with locked(lock, lock_timeout):
        plan = Plan(writer, ca_folders)
        result = build(plan)
        plan.check()
        if check_mode:
            return result
        # What a run killed before its renames left (temporaries of dead processes) goes, whether or not this run
        # changes anything: no stray copy of a key stays behind.
        tidy_temporaries([f for f in {os.path.dirname(s.real) for s in plan.steps} | ({lock} if lock else set())
                          if os.path.isdir(f)])
        if plan.changes:
            plan.apply()
    if lock and os.path.isdir(lock) and not os.path.lexists(os.path.join(lock, LOCK_NAME)):
        with locked(lock, lock_timeout):  # a folder this run made: its lock exists from now on
            pass
    return result


def run_in_turn(writer: str, builds: list[Callable[[Plan], dict]], check_mode: bool, *, lock: str,
                lock_timeout: float = 120, ca_folders: Iterable[str | None] = ()) -> list[dict]:
    """Several plans, each built on what the one before it wrote, under one hold of the CA folder's lock (a
    file that must leave its place before another takes it). Each is checked before it is applied; in check mode only
    the first is built (the others would read what it has not written)."""
    results = []
    with locked(lock, lock_timeout):
        for build in builds[:1] if check_mode else builds:
            plan = Plan(writer, ca_folders)
            results.append(build(plan))
            plan.check()
            if not check_mode and plan.changes:
                tidy_temporaries([f for f in {os.path.dirname(s.real) for s in plan.steps} | {lock}
                                  if os.path.isdir(f)])
                plan.apply()
    return results


@contextlib.contextmanager
def locked(folder: str | None, timeout: float = 120, where: str = "lock_timeout"):
    """Hold the CA folder's exclusive lock (``<folder>/.pgtls.lock``, made when missing) for the ``with`` block;
    fail naming the holder after ``timeout`` seconds. Taking it writes nothing. No folder (or one that does not
    exist yet): nothing to lock."""
    if not folder or not os.path.isdir(folder):
        yield
        return
    with _flocked(os.path.join(folder, LOCK_NAME), f"the CA folder {folder} ({LOCK_NAME}", "the CA folder's lock",
                  timeout, where):
        yield


# Where a host's cluster locks live: a tmpfs every systemd distribution has (/var/lock points to it), else (not
# there, or not writable by this user: RHEL's is root's only) the temporary folder. One file per protected path,
# named by its digest; never written, never removed.
HOST_LOCK_DIRS = ("/run/lock", tempfile.gettempdir())


@contextlib.contextmanager
def host_locked(protects: str | None, timeout: float = 300, where: str = "lock_timeout"):
    """Hold the host's exclusive lock on one cluster's files for the ``with`` block: two runs on one host at once
    (two jobs whose limits overlap) take turns, so one never plans against, snapshots or restores what the other is
    in the middle of writing. ``protects`` names the cluster (its snapshot folder, else its key): the lock is
    ``<run/lock>/pgtls-<digest>.lock``, owned by this user (a file someone else made there is refused)."""
    if timeout < 0:
        raise PkiError(f"must not be negative, got {timeout}", where=where)
    if not protects:
        yield
        return
    folder = next((d for d in HOST_LOCK_DIRS if os.path.isdir(d) and os.access(d, os.W_OK | os.X_OK)), None)
    if folder is None:
        raise PkiError(f"no folder for the host's lock ({', '.join(HOST_LOCK_DIRS)})", where=where)
    digest = hashlib.sha256(os.path.abspath(protects).encode("utf-8", "surrogateescape")).hexdigest()[:24]
    with _flocked(os.path.join(folder, f"pgtls-{digest}.lock"), f"{protects} (", f"the lock for {protects}", timeout,
                  where, owner=os.geteuid()):
        yield


@contextlib.contextmanager
def _flocked(path: str, held: str, what: str, timeout: float, where: str, owner: int | None = None):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise PkiError(f"cannot make {what} {path}: {exc.strerror}", where=where) from None
    except OSError as exc:
        raise PkiError(f"cannot open {what} {path}: {exc.strerror}", where=where) from None
    try:
        st = os.fstat(fd)
        if owner is not None and (st.st_uid != owner or not stat.S_ISREG(st.st_mode)):
            raise PkiError(f"refusing {what} {path}: not a file this user made (owner uid {st.st_uid}); remove it",
                           where=where)
        deadline = time.monotonic() + max(0.0, float(timeout))
        delay = 0.02
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _holder(fd)
                    raise PkiError(f"another run holds the lock on {held}{path if owner is not None else ''}"
                                   f"{holder}) and did not release it within {timeout:g} s; wait for it to finish, "
                                   "or raise lock_timeout", where=where) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _holder(fd: int) -> str:
    """The process holding the lock, from /proc/locks (the lock file itself is never written)."""
    st = os.fstat(fd)
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return ""
    for line in lines:
        fields = line.split()
        if len(fields) > 5 and fields[1] == "FLOCK" and fields[5].rsplit(":", 1)[-1] == str(st.st_ino) \
                and fields[4].isdigit() and int(fields[4]) != os.getpid():
            return f", held by process {fields[4]}"
    return ""


@contextlib.contextmanager
def scratch(prefix: str, uid: int | None = None, gid: int | None = None):
    """A private folder of this run (for a throw-away postmaster), removed with everything in it at the end."""
    folder = tempfile.mkdtemp(prefix=prefix)
    try:
        if uid is not None:
            os.chown(folder, uid, -1 if gid is None else gid)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def append_text(path: str, text: str) -> None:
    """Append to a file inside a scratch folder (the throw-away postmaster's settings)."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text)


def tidy_temporaries(folders: Iterable[str]) -> list[str]:
    """Remove the temporaries that killed runs left in ``folders`` (files.remove_stale_temporaries)."""
    return [f"{folder}: stale temporary {name} removed" for folder in sorted(set(folders))
            for name in remove_stale_temporaries(folder)]
