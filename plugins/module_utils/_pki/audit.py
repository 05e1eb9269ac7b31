# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""Module pgtls.ssl.audit_report: the audit's records, the client side from the CA folder, and the output files."""

from __future__ import annotations

import os
from urllib.parse import unquote

try:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID
except ImportError:  # deps.py keeps the error; modules fail with it through deps.require_cryptography()
    from .deps import MISSING

    x509 = ExtendedKeyUsageOID = MISSING

from . import compat, report
from .cafolder import Layout
from .errors import PkiError
from .files import Attrs, ensure_file, read_bytes
from .info import days_left, serial_hex
from .profiles import extension

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML comes with ansible-core
    yaml = None


def client_side(pki_dir: str, window_days: int, now) -> dict:
    """Client certificates from the issued/ archive that expire within the window (revoked ones left out), and the
    registry of revocations."""
    layout = Layout(pki_dir)
    revoked = []
    data = read_bytes(layout.path("revoked.yml"), "pki_dir", missing_ok=True)
    if data and yaml is not None:
        loaded = yaml.safe_load(data) or []
        revoked = [{k: str(v) for k, v in e.items()} for e in loaded if isinstance(e, dict) and "serial_number" in e]
    gone = set()
    for entry in revoked:
        text = entry["serial_number"].lower()
        try:
            gone.add(int(text[2:], 16) if text.startswith("0x") else int(text.replace(":", ""), 16) if ":" in text
                     else int(text))
        except ValueError:
            continue
    expiring = []
    issued = layout.archive
    for name in sorted(os.listdir(issued)) if os.path.isdir(issued) else []:
        newest = None
        for file in sorted(os.listdir(os.path.join(issued, name))):
            path = os.path.join(issued, name, file)
            try:
                cert = compat.load_certificates(read_bytes(path, "pki_dir"), path)[0]
            except PkiError:
                continue
            if not is_client(cert):
                continue  # the archive holds server certificates too
            if cert.serial_number not in gone and (newest is None or compat.not_after(cert) > compat.not_after(newest)):
                newest = cert
        # Only a name's newest certificate counts: older ones were renewed, not forgotten.
        if newest is not None and days_left(newest, now) < window_days:
            expiring.append({"name": _role(name), "serial": serial_hex(newest.serial_number),
                             "not_after": compat.not_after(newest).isoformat(), "days_left": days_left(newest, now)})
    return {"expiring": expiring, "revoked": revoked}


def is_client(cert) -> bool:
    usage = extension(cert, x509.ExtendedKeyUsage)
    return usage is not None and ExtendedKeyUsageOID.CLIENT_AUTH in usage


def _role(folder: str) -> str:
    """The role name of an archive folder (constants.folder_name reversed)."""
    return unquote(folder)


def audit_report(params: dict, check_mode: bool) -> dict:
    now = compat.now()
    servers = [report.record(entry, params["allow_stopped"]) for entry in params["servers"]]
    clients = client_side(params["pki_dir"], params["window_days"], now) if params.get("pki_dir") else None
    built = report.build(servers, clients, params["min_days"], now)
    outputs = {"json_path": report.to_json, "metrics_path": report.to_prometheus, "html_path": report.to_html}
    changed = []
    for option, render in outputs.items():
        path = params.get(option)
        if path:
            if ensure_file(path, render(built).encode(), Attrs(0o644), option, check_mode):
                changed.append(path)
    return {"changed": bool(changed), "written": changed, "summary": built["summary"], "servers": servers,
            "clients": built["clients"], "intermediates": built["intermediates"]}
