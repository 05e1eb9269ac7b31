# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""Checks on installed material (module pgtls.ssl.validate): structured findings, each naming file and problem."""

from __future__ import annotations

import grp
import ipaddress
import os
import pwd
import stat
from dataclasses import asdict, dataclass

from ..core import compat
from ..core.chain import build_path, order_problems, root_in_file, verify_chain, weak_crypto
from ..core.crls import chain_crl_problems
from ..core.errors import PkiError
from ..core.files import MAX_CRL_BYTES, key_permission_problem, read_bytes, readable_by
from ..core.info import cert_info, crl_info, days_left, fingerprint
from ..core.keys import load_private_key, same_public_key
from ..core.names import cert_sans, host_matches
from ..core.probe import ALPN, refuses_anonymous, served_chain
from ..core.specs import VALIDATE


@dataclass
class Finding:
    check: str
    status: str  # ok | warn | fail
    message: str


class Findings(list):
    def add(self, check: str, problems: list[str], ok_message: str, status: str = "fail") -> None:
        if problems:
            self.extend(Finding(check, status, p) for p in problems)
        else:
            self.append(Finding(check, "ok", ok_message))


def check(**given) -> dict:
    """validate() for a caller inside the collection (the activation's material step, your own CA's certificate):
    the checks it names, every other option at pgtls.ssl.validate's own default."""
    params = {name: entry.get("default") for name, entry in VALIDATE.items()}
    params.update(given)
    return validate(params)


def validate(params: dict) -> dict:
    if params.get("certificate_content"):
        cert_where = "certificate_content"
        chain = compat.load_certificates(params["certificate_content"].encode(), cert_where)
    elif params.get("certificate_path"):
        cert_where = f"certificate_path ({params['certificate_path']})"
        chain = compat.load_certificates(read_bytes(params["certificate_path"], "certificate_path"), cert_where)
    else:
        raise PkiError("one of certificate_path or certificate_content is required", where="certificate_path")
    leaf = chain[0]
    findings = Findings()
    findings.add("order", order_problems(chain), "leaf first, then each issuer")
    findings.add("root_in_file", root_in_file(chain), "no root in the file", status="warn")

    key_facts = _check_key(params, leaf, findings) if params.get("key_path") else None

    anchors = []
    if params.get("ca_content"):
        anchors = compat.load_certificates(params["ca_content"].encode(), "ca_content")
    elif params.get("ca_path"):
        anchors = compat.load_certificates(read_bytes(params["ca_path"], "ca_path"), f"ca_path ({params['ca_path']})")
    purpose = None if params["purpose"] == "any" else params["purpose"]
    path = chain
    if anchors:
        path, _problem = build_path(chain, anchors)  # verify_chain reports the problem
        findings.add("chain", verify_chain(chain, anchors, purpose), f"chain verifies to {path[-1].subject.rfc4514_string()}")
    else:
        findings.add("weak_crypto", [p for c in chain for p in weak_crypto(c)], "no weak keys or signatures")

    remaining = min(days_left(c) for c in path)
    if remaining < 0:
        findings.append(Finding("validity", "fail", f"a certificate in the chain has expired ({remaining} days)"))
    elif remaining < params["min_days"]:
        findings.append(Finding("validity", "fail", f"{remaining} days left, fewer than min_days={params['min_days']}"))
    elif remaining < params["warn_days"]:
        findings.append(Finding("validity", "warn", f"{remaining} days left, fewer than warn_days={params['warn_days']}"))
    else:
        findings.append(Finding("validity", "ok", f"{remaining} days left"))

    if params.get("ca_min_days"):
        # A CA with less left than a leaf's lifetime and its renewal window: leaves would soon outlive it (they are
        # never issued past it) - the intermediate rotation is due before anything breaks.
        findings.add("ca_validity", [f"{c.subject.rfc4514_string()} has {days_left(c)} days left, fewer than "
                                     f"ca_min_days={params['ca_min_days']} (a leaf's lifetime and its renewal window):"
                                     " rotate it (the rotate playbook) before its leaves outlive it"
                                     for c in path[1:] if days_left(c) < params["ca_min_days"]],
                     f"every CA in the chain has {params['ca_min_days']} days or more left")

    _check_hostnames(params.get("hostnames") or [], leaf, findings)

    crl_facts = []
    if params.get("crl_path"):
        crls = compat.load_crls(read_bytes(params["crl_path"], "crl_path", limit=MAX_CRL_BYTES),
                                f"crl_path ({params['crl_path']})")
        findings.add("crl", chain_crl_problems(path, crls), "every CA in the chain has a current CRL; none revoked")
        for crl in crls:
            info = crl_info(crl)
            crl_facts.append({"issuer": info["issuer"], "crl_number": info["crl_number"],
                              "next_update": info["next_update"], "revoked_count": len(info["revoked_serials"])})

    served = None
    if params.get("probe_host"):
        served = _probe(params, chain, findings)

    failed = [f for f in findings if f.status == "fail"]
    inputs = [cert_where] + [f"{option} ({params[option]})" for option in ("key_path", "ca_path", "crl_path")
                             if params.get(option)] + (["ca_content"] if params.get("ca_content") else [])
    return {
        "ok": not failed,
        "findings": [asdict(f) for f in findings],
        "fail_count": len(failed),
        "warn_count": len([f for f in findings if f.status == "warn"]),
        "certificate": cert_info(leaf),
        "chain": [cert_info(c) for c in path[1:]],
        "days_left": remaining,
        "crls": crl_facts,
        "key": key_facts,
        "served": served,
        "msg": ("validation failed: " + "; ".join(f"[{f.check}] {f.message}" for f in failed)
                + f" (checked: {', '.join(inputs)})") if failed else "all checks passed",
    }


def _check_key(params: dict, leaf, findings: Findings) -> dict | None:
    key_path = params["key_path"]
    try:
        key = load_private_key(read_bytes(key_path, "key_path"), params.get("key_passphrase"), f"key_path ({key_path})")
    except PkiError as exc:
        findings.append(Finding("key_match", "fail", str(exc)))
        return None
    findings.add("key_match", [] if same_public_key(key, leaf.public_key()) else
                 [f"key_path ({key_path}) does not match the certificate"], "key matches the certificate")
    st = os.stat(key_path)
    problem = key_permission_problem(st.st_uid, stat.S_IMODE(st.st_mode), f"key_path ({key_path})")
    unreadable = readable_by(key_path, params["server_user"]) if params.get("server_user") else None
    findings.add("key_permissions", [p for p in (problem, unreadable) if p],
                 f"owner uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):04o} pass PostgreSQL's rule")
    return {"path": key_path, "owner": _user(st.st_uid), "group": _group(st.st_gid),
            "mode": f"{stat.S_IMODE(st.st_mode):04o}"}


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _check_hostnames(hostnames: list[str], leaf, findings: Findings) -> None:
    for host in hostnames:
        if not host_matches(leaf, host):
            findings.append(Finding("hostname", "fail", f"{host} is not covered by the certificate's names "
                                    f"({', '.join(str(n.value) for n in cert_sans(leaf)) or 'none'})"))
            continue
        try:
            ipaddress.ip_address(host)
            findings.append(Finding("hostname", "warn", f"{host} is covered by an IP address SAN, which libpq "
                                    "before 15 ignores: such clients must connect by DNS name"))
        except ValueError:
            findings.append(Finding("hostname", "ok", f"{host} is covered"))


def _probe(params: dict, chain, findings: Findings) -> dict | None:
    host, port = params["probe_host"], params["probe_port"]
    if params.get("probe_client_auth") and params.get("probe_negotiation") != "tls":
        raise PkiError("probe_client_auth asks an HTTPS service (probe_negotiation tls): PostgreSQL asks for a client "
                       "certificate through pg_hba.conf, per connection", where="probe_client_auth")
    try:
        plain = params.get("probe_negotiation") == "tls"
        served = served_chain(host, port, params.get("probe_server_name"), params["probe_timeout"],
                              direct=params.get("probe_negotiation") in ("direct", "tls"), alpn=None if plain else ALPN)
    except PkiError as exc:
        findings.append(Finding("probe", "fail", str(exc)))
        return None
    direct_tls = None
    if params.get("probe_direct_tls"):
        try:
            served_chain(host, port, params.get("probe_server_name"), params["probe_timeout"], direct=True)
            direct_tls = True
            findings.append(Finding("direct_tls", "ok", f"{host}:{port} accepts direct TLS (ALPN postgresql)"))
        except PkiError as exc:
            direct_tls = False
            findings.append(Finding("direct_tls", "warn", f"{exc} (sslnegotiation=direct clients cannot connect)"))
    client_auth = None
    if params.get("probe_client_auth"):
        try:
            client_auth = refuses_anonymous(host, port, params.get("probe_server_name"), params["probe_timeout"])
        except PkiError as exc:
            findings.append(Finding("client_auth", "fail", str(exc)))
        else:
            findings.append(Finding("client_auth", "ok", f"{host}:{port} refuses a client without a certificate")
                            if client_auth else
                            Finding("client_auth", "fail", f"{host}:{port} answers a client without a certificate: "
                                    "anyone who reaches it may use it (require client certificates)"))
    served_leaf = served["chain"][0]
    if fingerprint(served_leaf) != fingerprint(chain[0]):
        findings.append(Finding("probe", "fail", f"{host}:{port} serves {served_leaf.subject.rfc4514_string()} "
                                f"(SHA-256 {fingerprint(served_leaf)}), not the certificate in the file "
                                f"(SHA-256 {fingerprint(chain[0])}): the reload did not take effect"))
    elif [fingerprint(c) for c in served["chain"]] != [fingerprint(c) for c in chain]:
        findings.append(Finding("probe", "warn", f"{host}:{port} serves the right leaf but a different chain "
                                f"({len(served['chain'])} certificates, the file has {len(chain)})"))
    else:
        findings.append(Finding("probe", "ok", f"{host}:{port} serves the certificate in the file"))
    return {
        "certificate": cert_info(served_leaf),
        "chain_fingerprints": [fingerprint(c) for c in served["chain"]],
        "protocol": served["protocol"],
        "cipher": served["cipher"],
        "negotiation": params.get("probe_negotiation") or "postgres",
        "direct_tls": direct_tls,
        "client_auth": client_auth,
        "matches_file": fingerprint(served_leaf) == fingerprint(chain[0]),
    }
