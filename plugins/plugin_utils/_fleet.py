# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""Fleet-level decisions and summaries the server role and the playbooks take on the controller: which root each
cluster trusts now compared with the CA folder's root (a foreign trust anchor is refused before anything changes),
the failed clusters of a looped task each named by its cluster, and the fleet's TLS endpoints (every cluster of the
database servers, every PgBouncer) the revoke playbook proves a revoked certificate against."""

from __future__ import annotations

from collections.abc import Mapping

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


def trust_problems(clusters_per_host: list, hosts: list, ca_root: str, pki_dir: str,
                   accept_new_root: bool = False) -> list[str]:
    """Refusal messages when a cluster already trusts a root other than ``ca_root`` (the CA folder's root PEM, or
    "" when the folder has none yet and a new root would be made). ``clusters_per_host`` holds, per host of
    ``hosts`` and in the same order, the clusters pgtls.ssl.cluster_info returned with ``trust_file`` (each with
    ``version``, ``name`` and ``trusted_root``, the PEM text or None; a Patroni member's CA files add ``file``, the
    file that holds it)."""
    if accept_new_root:
        return []
    wanted = _describe(ca_root.encode(), f"{pki_dir}/root.crt") if ca_root else None
    current, retired = _rotation_roots(pki_dir) if wanted else (set(), set())
    current |= set(wanted[1].split(",")) if wanted else set()
    foreign: dict[str, tuple[str, list[str]]] = {}
    for host, clusters in zip(hosts, clusters_per_host):
        if not isinstance(clusters, (list, tuple)):
            raise TypeError(f"trust_problems: the clusters of {host} must be a list (pgtls.ssl.cluster_info's "
                            f"clusters, each with trusted_root), not {type(clusters).__name__}")
        for cluster in clusters:
            pem = cluster.get("trusted_root")
            if not pem:
                continue  # no root.crt yet: nothing trusted, nothing to lose
            where = f"{host} {cluster.get('version')}/{cluster.get('name')}"
            found = _describe(pem.encode(), where)
            if found is None or (wanted and found[1] == wanted[1]):
                continue
            roots = set(found[1].split(","))
            if roots & current and roots <= current | retired:
                continue  # a root rotation's overlap: the roots the CA folder publishes, has, or retired
            foreign.setdefault(found[1], (found[0], []))[1].append(f"{where} ({cluster.get('file') or 'root.crt'})")
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


def _rotation_roots(pki_dir: str) -> tuple[set[str], set[str]]:
    """The fingerprints of the roots a root rotation in ``pki_dir`` trusts next to root.crt (next-root/,
    previous-root/), and of the roots it retired (retired/root-*.pem, the root first): a trust file holding those and
    the CA folder's root is the rotation's, not another CA's."""
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core import compat
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.errors import PkiError
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.info import fingerprint
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.layout import Layout

    def first(paths: list[str]) -> set[str]:
        prints = set()
        for path in paths:
            try:
                with open(path, "rb") as handle:
                    prints.add(fingerprint(compat.load_certificates(handle.read(), path)[0]))
            except (OSError, PkiError):
                continue  # unreadable: no root of the rotation, so nothing it could vouch for
        return prints

    layout = Layout(pki_dir)
    return first(layout.overlap_roots()), first(layout.retired_roots())


def cluster_failures(result: Mapping, loop_var: str = "__pgtls_cluster") -> list[str]:
    """The message of each failed item of a task looped over a host's clusters (``ansible_failed_result``: a loop's
    failure says only "One or more items failed"), each named by its cluster ("15/main: ...") unless it already
    starts so. A result without ``results`` (the task did not loop) counts as its one item."""
    items = result.get("results") if isinstance(result, Mapping) and "results" in result else [result]
    out = []
    for item in items or []:
        if not isinstance(item, Mapping) or not item.get("failed", False):
            continue
        cluster = item.get(loop_var)
        where = f"{cluster.get('version')}/{cluster.get('name')}" if isinstance(cluster, Mapping) else ""
        msg = str(item.get("msg", "failed"))
        out.append(msg if not where or msg.startswith(where) else f"{where}: {msg}")
    return out


def fleet_endpoints(servers: list, hostvars: Mapping, poolers: list = ()) -> list[dict]:
    """Every TLS endpoint of the fleet a client could log in to: each cluster the server role reported on each
    database server of ``servers`` (``pgtls_server_certificates``: ``port``), then each PgBouncer of ``poolers``
    with the first database it serves (``pgtls_pgbouncer_databases``; ``pgtls_pgbouncer_listen_port``, default
    6432); a PgBouncer that serves none is left out. Each endpoint: ``host``, ``port``, ``kind`` (``server`` or
    ``pooler``) and, for a pooler, ``dbname``."""
    out: list[dict] = []
    for host in servers or []:
        for cert in hostvars[host].get("pgtls_server_certificates") or []:
            out.append({"host": host, "port": cert["port"], "kind": "server"})
    for host in poolers or []:
        found = hostvars[host]
        databases = found.get("pgtls_pgbouncer_databases") or []
        if databases:
            out.append({"host": host, "port": found.get("pgtls_pgbouncer_listen_port", 6432),
                        "dbname": databases[0]["name"], "kind": "pooler"})
    return out


def session_targets(clusters: list, crl_file: str | None = None) -> list[dict]:
    """pgtls.ssl.sessions' clusters option from either of the server role's lists: the rows of
    pgtls_server_certificates (``cluster``, ``port``, ``socket_dir``, ``running``, ``crl_path``) or the clusters
    discovery found (``version``, ``name``, ``port``, ``socket_dir``, ``running``, ``config_dir``: the CRL is
    ``crl_file`` relative to the configuration folder, none without it)."""
    targets = []
    for cluster in clusters or []:
        crl = cluster.get("crl_path") or (f"{cluster['config_dir']}/{crl_file}"
                                          if crl_file and cluster.get("config_dir") else None)
        targets.append({"label": cluster.get("cluster") or f"{cluster.get('version')}/{cluster.get('name')}",
                        "port": cluster["port"], "socket_dir": cluster.get("socket_dir") or None,
                        "running": bool(cluster.get("running", True)), "crl_path": crl or None})
    return targets


def activation_steps(steps: list) -> list[str]:
    """One line per step of an activation (pgtls.ssl.cluster_tls' ``activation.steps``): ``step: status (N ms)``;
    a step recorded without its time (an older host module) has no brackets."""
    return [f"{s.get('step')}: {s.get('status')}" + (f" ({s['ms']} ms)" if isinstance(s.get("ms"), int) else "")
            for s in steps or []]


def hosts_except(pattern: str, hosts: list | None = None) -> str:
    """A play's host pattern without the named inventory hosts: ``pattern,!h1,!h2`` (commas, not colons: an
    inventory name may be an IPv6 address). No hosts: the pattern as given."""
    return ",".join([pattern, *(f"!{host}" for host in hosts or [])])
