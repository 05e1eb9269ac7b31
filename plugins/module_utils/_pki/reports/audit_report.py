# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""Module pgtls.ssl.audit_report: the audit's records, the client side from the CA folder, and the output files."""

from __future__ import annotations

import os
import stat
from urllib.parse import unquote

try:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID
except ImportError:  # deps.py keeps the error; modules fail with it through deps.require_cryptography()
    from ..core.deps import MISSING

    x509 = ExtendedKeyUsageOID = MISSING

from ..cafolder import revocation_registry as registry
from ..core import compat, planner
from ..core.checks import RenewPolicy
from ..core.crls import parse_serial
from ..core.errors import PkiError
from ..core.files import Attrs, read_bytes
from ..core.info import days_left, serial_hex
from ..core.layout import Layout
from ..core.profiles import extension
from . import report


def client_side(pki_dir: str, window_days: int, now, renewal: RenewPolicy | None = None) -> dict:
    """Every client name's newest certificate of the issued/ archive (revoked ones left out), with when ``renewal``
    makes it due; those that expire within the window; the registry of revocations. The archive is read by content;
    what is not a folder of certificates is passed over."""
    layout = Layout(pki_dir)
    renewal = renewal or RenewPolicy()
    revoked = [{k: str(v) for k, v in entry.items()} for entry in registry.load(layout.registry)]
    gone = {parse_serial(entry["serial_number"], f"pki_dir ({layout.registry})") for entry in revoked}
    certificates, expiring = [], []
    for name in _real_entries(layout.archive, stat.S_ISDIR):
        newest = None
        for file in _real_entries(os.path.join(layout.archive, name), stat.S_ISREG):
            path = os.path.join(layout.archive, name, file)
            try:
                cert = compat.load_certificates(read_bytes(path, "pki_dir", nofollow=True), path)[0]
            except PkiError:
                continue
            if not is_client(cert):
                continue  # the archive holds server certificates too
            if cert.serial_number not in gone and (newest is None or compat.not_after(cert) > compat.not_after(newest)):
                newest = cert
        # Only a name's newest certificate counts: older ones were renewed, not forgotten.
        if newest is None:
            continue
        start, end = compat.not_before(newest), compat.not_after(newest)
        found = {"name": _role(name), "serial": serial_hex(newest.serial_number), "not_after": end.isoformat(),
                 "days_left": days_left(newest, now)}
        certificates.append(dict(found, not_before=start.isoformat(),
                                 renews_at=renewal.renews_at(start, end).isoformat(timespec="seconds")))
        if found["days_left"] < window_days:
            expiring.append(found)
    return {"certificates": certificates, "expiring": expiring, "revoked": revoked}


def _real_entries(folder: str, wanted) -> list[str]:
    """The names in ``folder`` that are of the wanted type (stat.S_ISDIR or S_ISREG); links and others left out."""
    try:
        names = sorted(os.listdir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [n for n in names if wanted(os.lstat(os.path.join(folder, n)).st_mode)]


def is_client(cert) -> bool:
    usage = extension(cert, x509.ExtendedKeyUsage)
    return usage is not None and ExtendedKeyUsageOID.CLIENT_AUTH in usage


def _role(folder: str) -> str:
    """The role name of an archive folder (constants.folder_name reversed)."""
    return unquote(folder)


OUTPUTS = (("json_path", "report_json", report.to_json), ("metrics_path", "report_metrics", report.to_prometheus),
           ("html_path", "report_html", report.to_html))


def audit_report(params: dict, check_mode: bool) -> dict:
    """Module entry (pgtls.ssl.audit_report): every record typed first, then the outputs planned and written."""
    for option in ("window_days", "min_days", "client_renew_before_days"):
        if params[option] < 0:
            raise PkiError(f"must not be negative, got {params[option]}", where=option)
    if not 0 <= params["client_renew_before_percent"] <= 99:
        raise PkiError(f"must be between 0 and 99, got {params['client_renew_before_percent']}",
                       where="client_renew_before_percent")
    renewal = RenewPolicy(days=params["client_renew_before_days"], percent=params["client_renew_before_percent"])
    planner.check_ca_folder(params.get("pki_dir"), "pki_dir")
    now = compat.now()
    servers = [report.record(entry, params["allow_stopped"], f"servers[{index}]", now)
               for index, entry in enumerate(params["servers"])]
    clients = client_side(params["pki_dir"], params["window_days"], now, renewal) if params.get("pki_dir") else None
    built = report.build(servers, clients, params["min_days"], now)

    def outputs(plan) -> dict:
        plan.options({option: params.get(option) for option, _kind, _render in OUTPUTS})
        written = [params[option] for option, kind, render in OUTPUTS if params.get(option) and
                   plan.write(params[option], render(built).encode(), Attrs(0o644), kind=kind, where=option)]
        return {"changed": bool(written), "written": written, "summary": built["summary"], "servers": servers,
                "clients": built["clients"], "intermediates": built["intermediates"]}

    return planner.run("audit_report", outputs, check_mode, ca_folders=[params.get("pki_dir")])
