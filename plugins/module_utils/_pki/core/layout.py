# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""The controller's CA folder: its layout (every name in it, and who may write it) and its state.

Every read-modify-write of controller state (a CA being created, a CRL being signed, the revocation registry)
happens under an exclusive lock on ``<folder>/.pgtls.lock`` (planner.locked), so two runs on one CA folder queue
instead of losing each other's work. ``<folder>/state.json`` keeps what must survive the loss of a file: the last CRL
number each CA signed (RFC 5280 5.2.3 wants them strictly increasing, also when ``intermediate.crl`` was deleted).
The write planner refuses any output in a CA folder whose name ``Layout.owners`` does not give to the writer.
"""

from __future__ import annotations

import json
import os

from .constants import folder_name
from .errors import PkiError
from .files import MAX_PEM_BYTES, Attrs, read_bytes
from .keys import public_fingerprint

# Who writes what in a CA folder (the write planner's writer names). The low-level ca and crl modules may also name
# files of their own at the top of the folder; no other writer writes in a CA folder outside its own sub-folder.
CA_WRITERS = frozenset({"ca", "ca_folder"})
CRL_WRITERS = frozenset({"crl", "ca_folder"})
ROTATION = "intermediate_rotation"
ROOT_ROTATION = "root_rotation"
ROTATION_WRITERS = frozenset({ROTATION, ROOT_ROTATION})
NEXT_ROOT, PREVIOUS_ROOT = ROOT_FOLDERS = ("next-root", "previous-root")  # a root rotation's: each holds a root
_FILES = {
    "root.crt": (CA_WRITERS | {ROOT_ROTATION}, "the root CA's certificate"),
    "root.key": (CA_WRITERS | {ROOT_ROTATION}, "the root CA's private key"),
    "root.crl": (CRL_WRITERS | {ROOT_ROTATION}, "the root CA's CRL"),
    "root.generation": (frozenset({ROOT_ROTATION}), "the root's generation number"),
    "intermediate.crt": (CA_WRITERS | ROTATION_WRITERS, "the intermediate CA's certificate"),
    "intermediate.key": (CA_WRITERS | ROTATION_WRITERS, "the intermediate CA's private key"),
    "intermediate.crl": (CRL_WRITERS | ROTATION_WRITERS, "the intermediate CA's CRL"),
    "intermediate.generation": (ROTATION_WRITERS, "the intermediate's generation number"),
    "crl.pem": (CRL_WRITERS, "the CRL bundle (crl.pem)"),
    "state.json": (CRL_WRITERS, "the CA folder's state (last CRL numbers)"),
    "revoked.yml": (frozenset({"revocation_registry"}), "the revocation registry (revoked.yml)"),
    ".pgtls.lock": (frozenset(), "the CA folder's lock"),
}
_FOLDERS = {
    "previous": (frozenset({ROTATION}), "the previous intermediate (previous/)"),
    "retired": (ROTATION_WRITERS, "the retired intermediates and roots (retired/)"),
    NEXT_ROOT: (frozenset({ROOT_ROTATION}), "the new root of a root rotation, published (next-root/)"),
    PREVIOUS_ROOT: (frozenset({ROOT_ROTATION}), "the previous root and its intermediate (previous-root/)"),
    "issued": (frozenset({"archive"}), "the archive of issued certificates (issued/)"),
    "clients": (frozenset({"host"}), "the client bundles (clients/)"),
    "external": (frozenset({"cluster_tls"}), "your own CA's exchange folder (external/)"),
}


class Layout:
    """Where each thing lives in a CA folder (the server role, the playbooks and the modules use these names), and
    which writer may write each of them."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def path(self, *parts: str) -> str:
        return os.path.join(self.folder, *parts)

    @staticmethod
    def owners(relative: str) -> frozenset:
        """The writers that may write ``relative`` (a path inside the folder)."""
        parts = relative.split(os.sep)
        if len(parts) == 1:
            return _FILES[relative][0] if relative in _FILES else \
                (_FOLDERS[relative][0] if relative in _FOLDERS else frozenset({"ca", "crl"}))
        if parts[0] in _FOLDERS:
            owners = _FOLDERS[parts[0]][0]
            if parts[0] in ("previous", *ROOT_FOLDERS) and len(parts) == 2 and \
                    parts[1].endswith(".crl"):
                owners = owners | CRL_WRITERS  # the ca_folder signs the CRL of every CA the servers trust
            return owners
        return frozenset()

    @staticmethod
    def describe(relative: str) -> str:
        parts = relative.split(os.sep)
        if relative in _FILES:
            return _FILES[relative][1]
        if parts[0] in _FOLDERS:
            return f"{relative}, in {_FOLDERS[parts[0]][1]}"
        return f"{relative}, a file"

    def ca_keys(self) -> list[str]:
        """The CA keys the folder holds (root.key, intermediate.key): none in the mirror of a PKI engine."""
        return [path for path in (self.root_key, self.intermediate_key) if os.path.lexists(path)]

    @property
    def intermediate_files(self) -> tuple[str, ...]:
        return ("intermediate.crt", "intermediate.key", "intermediate.crl")

    @property
    def root_cert(self) -> str:
        return self.path("root.crt")

    @property
    def root_key(self) -> str:
        return self.path("root.key")

    @property
    def root_crl(self) -> str:
        return self.path("root.crl")

    @property
    def intermediate_cert(self) -> str:
        """The intermediate that signs servers and clients (the current generation's)."""
        return self.path("intermediate.crt")

    @property
    def intermediate_key(self) -> str:
        return self.path("intermediate.key")

    @property
    def intermediate_crl(self) -> str:
        return self.path("intermediate.crl")

    @property
    def crl_bundle(self) -> str:
        """The CRL of every CA in one file (a server's ssl_crl_file)."""
        return self.path("crl.pem")

    @property
    def state(self) -> str:
        return self.path(STATE_NAME)

    @property
    def archive(self) -> str:
        """Every certificate issued, per role name (issued/<name>/<SERIAL>.crt): revocation by name reads it."""
        return self.path("issued")

    @property
    def registry(self) -> str:
        """The revocations the revoke playbook added (YAML list), turned into the intermediate's CRL."""
        return self.path("revoked.yml")

    def issued(self, name: str) -> str:
        """The archive folder of the certificates issued to a role name (one <SERIAL>.crt each)."""
        return os.path.join(self.archive, folder_name(name))

    @property
    def generation_file(self) -> str:
        return self.path("intermediate.generation")

    @property
    def previous(self) -> str:
        """An intermediate being rotated out: still trusted, its CRL still on the servers."""
        return self.path("previous")

    def previous_file(self, name: str) -> str:
        return os.path.join(self.previous, name)

    @property
    def retired(self) -> str:
        """Certificates of retired intermediates (the root's CRL revokes them)."""
        return self.path("retired")

    @property
    def clients(self) -> str:
        """Client bundles made on the controller (the client role's pgtls_client_bundle_dir by default)."""
        return self.path("clients")

    def generation(self, read=None) -> int:
        return _number(self.generation_file, read)

    @property
    def root_generation_file(self) -> str:
        return self.path("root.generation")

    def root_generation(self, read=None) -> int:
        """The root's generation: 1 for the first root, raised by each root rotation's switch (its name: R<n>)."""
        return _number(self.root_generation_file, read)

    @property
    def next_root(self) -> str:
        """A root rotation's new root, published (trusted everywhere next to the current root), not yet signing."""
        return self.path(NEXT_ROOT)

    @property
    def previous_root(self) -> str:
        """A root rotation's previous root and its last intermediate: still trusted, their CRLs still on the
        servers, until the rotation's retire."""
        return self.path(PREVIOUS_ROOT)

    def overlap_roots(self, exists=os.path.isfile) -> list[str]:
        """The other roots the fleet trusts during a root rotation (next-root/root.crt after its start,
        previous-root/root.crt after its switch), beside root.crt: what every root.crt and ssl_ca_file carries."""
        return [path for path in (os.path.join(self.next_root, "root.crt"), os.path.join(self.previous_root, "root.crt"))
                if exists(path)]

    def retired_roots(self, listdir=None) -> list[str]:
        """The archived roots of finished root rotations (retired/root-<SERIAL>.pem: the root, then its last
        intermediate)."""
        names = (listdir or (lambda f: os.listdir(f) if os.path.isdir(f) else []))(self.retired)
        return [os.path.join(self.retired, n) for n in sorted(names) if n.startswith("root-") and n.endswith(".pem")]


def _number(path: str, read=None) -> int:
    data = (read or read_bytes)(path, "pki_dir", missing_ok=True)
    text = (data or b"1").decode(errors="replace").strip()
    if not text.isdigit():
        raise PkiError(f"{path} holds {text[:20]!r}, not a generation number", where="pki_dir")
    return int(text)


STATE_NAME = "state.json"
DEFAULT_LOCK_TIMEOUT = 120


def read_state(folder: str, read=None) -> dict:
    path = os.path.join(folder, STATE_NAME)
    data = (read or read_bytes)(path, "state", missing_ok=True, limit=MAX_PEM_BYTES)
    if not data:
        return {}
    try:
        state = json.loads(data)
    except ValueError:
        raise PkiError(f"{path} is not valid JSON: restore it from a backup (it keeps the last CRL numbers), or "
                       "remove it to start from the numbers in the CRL files", where="state") from None
    return state if isinstance(state, dict) else {}


def issuer_key(cert) -> str:
    """How state.json names a CA: its subject and the SHA-256 of its public key (two generations of an
    intermediate with one name stay apart)."""
    return f"{cert.subject.rfc4514_string()} {public_fingerprint(cert.public_key())[:23]}"


def last_crl_number(folder: str, cert, plan=None) -> int:
    return int(read_state(folder, plan.read if plan else None).get("crl_numbers", {}).get(issuer_key(cert), 0))


def record_crl_number(plan, folder: str, cert, number: int) -> None:
    """Declare state.json with ``number`` as the last CRL number of ``cert`` (never lower than what it holds)."""
    state = read_state(folder, plan.read)
    numbers = state.setdefault("crl_numbers", {})
    key = issuer_key(cert)
    numbers[key] = max(int(numbers.get(key, 0)), number)
    data = (json.dumps(state, indent=2, sort_keys=True) + "\n").encode()
    path = os.path.join(folder, STATE_NAME)
    plan.write(path, data, Attrs(0o600), kind="state", where="state", again=True)
