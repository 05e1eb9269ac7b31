# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""The controller's CA folder: its layout, its lock and its state.

Every read-modify-write of controller state (a CA being created, a CRL being signed, the revocation registry)
happens under an exclusive lock on ``<folder>/.pgtls.lock``, so two runs on one CA folder queue instead of losing
each other's work. ``<folder>/state.json`` keeps what must survive the loss of a file: the last CRL number each CA
signed (RFC 5280 5.2.3 wants them strictly increasing, also when ``intermediate.crl`` was deleted).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time

from .constants import folder_name
from .errors import PkiError
from .files import MAX_PEM_BYTES, Attrs, read_bytes, write_atomic
from .keys import public_fingerprint


class Layout:
    """Where each thing lives in a CA folder (the server role, the playbooks and the modules use these names)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def path(self, *parts: str) -> str:
        return os.path.join(self.folder, *parts)

    @property
    def intermediate_files(self) -> tuple[str, ...]:
        return ("intermediate.crt", "intermediate.key", "intermediate.crl")

    @property
    def root_cert(self) -> str:
        return self.path("root.crt")

    @property
    def intermediate_cert(self) -> str:
        """The intermediate that signs servers and clients (the current generation's)."""
        return self.path("intermediate.crt")

    @property
    def intermediate_key(self) -> str:
        return self.path("intermediate.key")

    @property
    def crl_bundle(self) -> str:
        """The CRL of every CA in one file (a server's ssl_crl_file)."""
        return self.path("crl.pem")

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

    @property
    def retired(self) -> str:
        """Certificates of retired intermediates (the root's CRL revokes them)."""
        return self.path("retired")

    def generation(self) -> int:
        data = read_bytes(self.generation_file, "pki_dir", missing_ok=True)
        text = (data or b"1").decode(errors="replace").strip()
        if not text.isdigit():
            raise PkiError(f"{self.generation_file} holds {text[:20]!r}, not a generation number", where="pki_dir")
        return int(text)


LOCK_NAME = ".pgtls.lock"
STATE_NAME = "state.json"
DEFAULT_LOCK_TIMEOUT = 120


@contextlib.contextmanager
def locked(folder: str, timeout: float = DEFAULT_LOCK_TIMEOUT, where: str = "lock_timeout"):
    """Hold the CA folder's exclusive lock for the ``with`` block; fail naming the holder after ``timeout`` s."""
    if not os.path.isdir(folder):
        yield
        return
    path = os.path.join(folder, LOCK_NAME)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise PkiError(f"cannot open the CA folder's lock {path}: {exc.strerror}", where=where) from None
    try:
        deadline = time.monotonic() + max(0.0, float(timeout))
        delay = 0.02
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _holder(fd)
                    raise PkiError(f"another run holds the lock on the CA folder {folder} ({LOCK_NAME}{holder}) "
                                   f"and did not release it within {timeout:g} s; wait for it to finish, or "
                                   "raise lock_timeout", where=where) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode().strip()
    except OSError:
        return ""
    return f", held by process {pid}" if pid.isdigit() else ""


def read_state(folder: str) -> dict:
    data = read_bytes(os.path.join(folder, STATE_NAME), "state", missing_ok=True, limit=MAX_PEM_BYTES)
    if not data:
        return {}
    try:
        state = json.loads(data)
    except ValueError:
        raise PkiError(f"{os.path.join(folder, STATE_NAME)} is not valid JSON: restore it from a backup (it keeps "
                       "the last CRL numbers), or remove it to start from the numbers in the CRL files",
                       where="state") from None
    return state if isinstance(state, dict) else {}


def write_state(folder: str, state: dict) -> None:
    data = (json.dumps(state, indent=2, sort_keys=True) + "\n").encode()
    write_atomic(os.path.join(folder, STATE_NAME), data, Attrs(0o600), "state")


def issuer_key(cert) -> str:
    """How state.json names a CA: its subject and the SHA-256 of its public key (two generations of an
    intermediate with one name stay apart)."""
    return f"{cert.subject.rfc4514_string()} {public_fingerprint(cert.public_key())[:23]}"


def last_crl_number(folder: str, cert) -> int:
    return int(read_state(folder).get("crl_numbers", {}).get(issuer_key(cert), 0))


def record_crl_number(folder: str, cert, number: int) -> None:
    state = read_state(folder)
    numbers = state.setdefault("crl_numbers", {})
    key = issuer_key(cert)
    numbers[key] = max(int(numbers.get(key, 0)), number)
    write_state(folder, state)
