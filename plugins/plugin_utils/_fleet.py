# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""Fleet-level decisions the server role takes on the controller, before anything changes: which root each
cluster trusts now compared with the CA folder's root (a foreign trust anchor is refused), and which clusters
are running (a stopped cluster cannot prove anything)."""

from __future__ import annotations

import base64

# How many host/cluster names a refusal lists per root before it summarises the rest.
SHOWN = 5


def _describe(pem: bytes, where: str) -> tuple[str, str] | None:
    """(label, SHA-256 fingerprints) of the certificates in ``pem``; None when it holds no readable certificate
    (a truncated or empty root.crt is no trust anchor: the role repairs it)."""
    # cryptography is imported here, not at the top: the filter plugin loads without it (sanity import test).
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core import compat
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.errors import PkiError
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.info import fingerprint

    try:
        certs = compat.load_certificates(pem, where)
    except PkiError:
        return None
    label = " + ".join(f"{c.subject.rfc4514_string()} (SHA-256 {fingerprint(c)})" for c in certs)
    return label, ",".join(sorted(fingerprint(c) for c in certs))


def _trusted(result) -> list[dict]:
    """One host's trusted roots as slurp results: from a registered slurp loop, or from pgtls.ssl.cluster_info's
    clusters (their ``trusted_root``, read with ``trust_file``)."""
    if isinstance(result, list):
        return [{"__pgtls_cluster": c, "content": base64.b64encode(c["trusted_root"].encode()).decode(),
                 "source": "root.crt"} for c in result if isinstance(c, dict) and c.get("trusted_root")]
    return (result or {}).get("results", [])


def trust_problems(slurped: list, hosts: list, ca_root: str, pki_dir: str, accept_new_root: bool = False) -> list[str]:
    """Refusal messages when a cluster already trusts a root other than ``ca_root`` (the CA folder's root PEM, or
    "" when the folder has none yet and a new root would be made). ``slurped`` holds, per host of ``hosts``, the
    clusters pgtls.ssl.cluster_info returned with ``trust_file`` (each with ``trusted_root``), or the registered
    result of slurping each cluster's root.crt (items with ``__pgtls_cluster`` and ``content``)."""
    if accept_new_root:
        return []
    wanted = _describe(ca_root.encode(), f"{pki_dir}/root.crt") if ca_root else None
    foreign: dict[str, tuple[str, list[str]]] = {}
    for host, result in zip(hosts, slurped):
        for item in _trusted(result):
            if not item.get("content"):
                continue  # no root.crt yet: nothing trusted, nothing to lose
            cluster = item.get("__pgtls_cluster", {})
            where = f"{host} {cluster.get('version')}/{cluster.get('name')}"
            found = _describe(base64.b64decode(item["content"]), where)
            if found is None or (wanted and found[1] == wanted[1]):
                continue
            foreign.setdefault(found[1], (found[0], []))[1].append(f"{where} ({item.get('source', 'root.crt')})")
    if not foreign:
        return []
    trusted = []
    for label, places in foreign.values():
        more = f" and {len(places) - SHOWN} more" if len(places) > SHOWN else ""
        trusted.append(f"{', '.join(places[:SHOWN])}{more} trust{'s' if len(places) == 1 else ''} {label}")
    ours = (f"the CA folder {pki_dir} holds the root {wanted[0]}" if wanted
            else f"the CA folder {pki_dir} holds no root CA (root.crt), so a new root would be made")
    return [
        f"refusing to change the fleet's trust anchor: {ours}, but {'; '.join(trusted)}. Going on would replace "
        "root.crt and every server certificate, and every client that trusts the current root would fail with "
        "'certificate verify failed'. The CA folder is pgtls_pki_dir, else $PGTLS_PKI_DIR, else pki/ next to the "
        "inventory: point it at the fleet's CA folder, or set pgtls_accept_new_root=true to move the fleet to "
        "this root. Nothing was changed."
    ]


def clusters_with_state(clusters: list, ready_codes: list) -> list:
    """Each cluster with ``running`` from pg_isready's exit code, in order: 0 accepting connections, 1 rejecting
    them (starting or stopping), 2 no answer; any other code (no pg_isready) keeps what discovery said."""
    codes = [str(code).strip() for code in ready_codes]
    if len(codes) != len(clusters):
        raise ValueError(f"pg_isready answered {len(codes)} times for {len(clusters)} clusters: {codes}")
    out = []
    for cluster, code in zip(clusters, codes):
        running = {"0": True, "1": False, "2": False}.get(code, cluster.get("running", True))
        out.append(dict(cluster, running=bool(running), ready_code=int(code) if code.isdigit() else -1))
    return out
