# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""TLS of a Patroni member, through Patroni's own YAML configuration (pgtls.ssl.patroni_config).

Patroni writes postgresql.conf itself (and pg_hba.conf, and the standby's primary_conninfo): settings put beside it
last until Patroni writes the file again. So a member's TLS is set where Patroni reads it:

- ``postgresql.parameters``: ssl, ssl_cert_file, ssl_key_file, ssl_ca_file, ssl_crl_file, ssl_min_protocol_version;
- ``postgresql.authentication.replication``: sslmode verify-full with the root, the CRL and the replication
  certificate (what Patroni puts in primary_conninfo); ``use_unix_socket_repl`` when the server certificate does
  not name localhost (Patroni's own replication check connects to localhost);
- ``restapi``: the member's server certificate, the CA, ``verify_client: required``;
- ``ctl``: the client certificate patronictl **and the members** present to a REST API (Patroni's requests take
  ``ctl.certfile`` only, never restapi's);
- ``etcd3`` (or ``etcd``): https with the CA and the member's etcd client certificate.

Only these keys are read and written: the rest of the file (passwords included) stays as it is and is never
returned. The material is checked before the file is: each key matches its certificate, each certificate verifies
against the CA with the purpose it serves, the REST API's certificate names the host of its connect_address.

With ``reload``, the member is then activated by the engine (activation.Patroni) when the file changed, when the
REST API or PostgreSQL serves another certificate than the installed one (a renewal under the same paths), or when
the file or the CRL differs from what the member last loaded (``.pgtls-loaded`` beside the certificate: their
digests, written after each proven reload - a run killed after a write and before its reload, the CRL play's
included): patronictl reload, wait until both serve it, psql verify-full and the REST API over mTLS; on failure the
previous file is put back and Patroni reloaded again.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from urllib.parse import urlparse

from ansible.module_utils.urls import open_url

from ..core import compat
from ..core.chain import verify_chain
from ..core.errors import PkiError
from ..core.files import Attrs, check_distinct, read_bytes
from ..core.keys import load_private_key, same_public_key
from ..core.names import cert_sans, host_matches
from ..core.planner import Plan, host_locked, run
from ..core.probe import served_chain
from .activation import Patroni
from .snapshot import Previous

WRITER = "patroni_config"
LOADED_NAME = ".pgtls-loaded"  # beside the member's certificate: the digests of what it last loaded (JSON)
DCS_SECTIONS = ("etcd3", "etcd")
MAX_CONFIG_BYTES = 1024 * 1024


def _yaml():
    try:
        import yaml
    except ImportError as exc:  # Patroni itself needs PyYAML: a member without it has no Patroni
        raise PkiError("PyYAML is missing on this host (Patroni needs it too: python3-yaml)", where="path") from exc
    return yaml


def _load(data: bytes, path: str) -> dict:
    yaml = _yaml()
    try:
        loaded = yaml.safe_load(data) if data.strip() else None
    except yaml.YAMLError as exc:
        raise PkiError(f"{path} is not valid YAML ({str(exc).splitlines()[0]}); nothing was changed", where="path") \
            from exc
    if not isinstance(loaded, dict):
        raise PkiError(f"{path} does not hold Patroni's configuration (a YAML mapping with a 'postgresql' section)",
                       where="path")
    if not isinstance(loaded.get("postgresql"), dict):
        raise PkiError(f"{path} has no 'postgresql' section: is it Patroni's configuration file?", where="path")
    return loaded


def _section(config: dict, path: tuple, where: str, file: str) -> dict:
    node = config
    for name in path:
        child = node.get(name)
        if child is None:
            child = node[name] = {}
        if not isinstance(child, dict):
            raise PkiError(f"{file}: {'.'.join(path)} is not a mapping ({type(child).__name__}); refusing to "
                           "rewrite it", where=where)
        node = child
    return node


def _checked_pair(plan: Plan, pair: dict, ca_path: str, anchors: list, purpose: str, prefix: str):
    """The leaf of the pair's certificate once it matches its key and verifies against ``anchors`` for ``purpose``.
    ``prefix``: "" for the server pair (options cert_path, key_path), "ctl." and so on for the client pairs."""
    cert_path, key_path = pair["cert_path"], pair["key_path"]
    chain = plan.certificates(cert_path, f"{prefix}cert_path")
    key_data = plan.read(key_path, f"{prefix}key_path")
    key = load_private_key(key_data or b"", None, f"{prefix}key_path ({key_path})")
    if not same_public_key(chain[0].public_key(), key):
        raise PkiError(f"the key {key_path} does not match the certificate {cert_path} ({prefix}cert_path); nothing was "
                       "changed",
                       where=f"{prefix}key_path")
    problems = verify_chain(chain, anchors, purpose=purpose)
    if problems:
        raise PkiError(f"{cert_path} does not verify against ca_path {ca_path} ({'; '.join(problems)}); nothing was "
                       "changed", where=f"{prefix}cert_path")
    return chain[0]


def _host_of(address: str) -> str:
    address = str(address).strip()
    if address.startswith("["):
        return address[1:].split("]", 1)[0]
    return address.rsplit(":", 1)[0] if address.count(":") == 1 else address


def _dcs_section(config: dict, file: str) -> str:
    found = [name for name in DCS_SECTIONS if name in config]
    if not found:
        raise PkiError(f"{file} has no etcd3 or etcd section: this module sets TLS for etcd only (Patroni's other "
                       "stores are not covered)", where="etcd")
    if len(found) > 1:
        raise PkiError(f"{file} has both an etcd3 and an etcd section: Patroni would use one of them; keep one",
                       where="etcd")
    return found[0]


def _plain_etcd_addresses(section: dict) -> list:
    """The addresses of the section that say http:// (protocol: https does not turn them into https)."""
    found = []
    for key in ("url", "proxy", "hosts", "host"):
        value = section.get(key)
        values = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else []
        found += [f"{key}: {item.strip()}" for item in values
                  if isinstance(item, str) and urlparse(item.strip()).scheme == "http"]
    return found


def wanted_settings(params: dict, names_localhost: bool) -> dict:
    """The keys this run sets, as (section path, key) -> value."""
    ca, crl = params["ca_path"], params.get("crl_path")
    wanted = {
        (("postgresql", "parameters"), "ssl"): "on",
        (("postgresql", "parameters"), "ssl_cert_file"): params["cert_path"],
        (("postgresql", "parameters"), "ssl_key_file"): params["key_path"],
        (("postgresql", "parameters"), "ssl_ca_file"): ca,
        (("postgresql", "parameters"), "ssl_min_protocol_version"): params["min_protocol_version"],
    }
    if crl:
        wanted[(("postgresql", "parameters"), "ssl_crl_file")] = crl
    replication = params.get("replication")
    if replication:
        section = ("postgresql", "authentication", "replication")
        wanted.update({(section, "sslmode"): "verify-full", (section, "sslrootcert"): ca,
                       (section, "sslcert"): replication["cert_path"], (section, "sslkey"): replication["key_path"]})
        if crl:
            wanted[(section, "sslcrl")] = crl
        if not names_localhost:
            wanted[(("postgresql",), "use_unix_socket_repl")] = True
    if params["restapi"]:
        wanted.update({(("restapi",), "certfile"): params["cert_path"], (("restapi",), "keyfile"): params["key_path"],
                       (("restapi",), "cafile"): ca, (("restapi",), "verify_client"): "required"})
    ctl = params.get("ctl")
    if ctl:
        wanted.update({(("ctl",), "certfile"): ctl["cert_path"], (("ctl",), "keyfile"): ctl["key_path"],
                       (("ctl",), "cacert"): ca})
    return wanted


def _label(path: tuple, key: str) -> str:
    return ".".join((*path, key))


def _address(config: dict, section: str, file: str) -> tuple[str, int]:
    value = (config.get(section) or {}).get("connect_address") if isinstance(config.get(section), dict) else None
    host = _host_of(value) if value else ""
    port = str(value).rsplit(":", 1)[-1] if value and ":" in str(value) else ""
    if not host or not port.isdigit():
        raise PkiError(f"{file} has no {section}.connect_address with a port (host:port): reload proves the member "
                       "there", where="reload")
    return host, int(port)


def build(params: dict, plan: Plan, member: dict | None = None) -> dict:
    file = params["path"]
    ctl, etcd, replication = params.get("ctl"), params.get("etcd"), params.get("replication")
    outputs = {"path": file}
    inputs = {"cert_path": params["cert_path"], "key_path": params["key_path"], "ca_path": params["ca_path"],
              "crl_path": params.get("crl_path")}
    for name, given in (("ctl", ctl), ("etcd", etcd), ("replication", replication)):
        if given:
            inputs.update({f"{name}.cert_path": given["cert_path"], f"{name}.key_path": given["key_path"]})
    # The inputs may share files (one client pair for ctl and etcd); none may be the configuration file.
    plan.options(outputs)
    for where, given in inputs.items():
        check_distinct({**outputs, where: given})
        plan.input(given, where)
    if params.get("reload") and not ctl:
        raise PkiError("reload proves the REST API with the ctl client certificate: give ctl", where="ctl")
    if params["restapi"] and not ctl:
        raise PkiError("restapi with verify_client: required needs a client certificate in ctl: patronictl and the "
                       "members themselves present ctl's certificate to a REST API (never restapi's)", where="ctl")

    anchors = plan.certificates(params["ca_path"], "ca_path")
    server = _checked_pair(plan, params, params["ca_path"], anchors, "server", "")
    for name, given in (("ctl", ctl), ("etcd", etcd), ("replication", replication)):
        if given:
            _checked_pair(plan, given, params["ca_path"], anchors, "client", f"{name}.")
    if params.get("crl_path"):
        data = plan.read(params["crl_path"], "crl_path")
        compat.load_crls(data or b"", f"crl_path ({params['crl_path']})")

    current_data = plan.read(file, "path", limit=MAX_CONFIG_BYTES)
    config = _load(current_data, file)
    if params["restapi"]:
        restapi = config.get("restapi")
        if not isinstance(restapi, dict) or not restapi.get("connect_address"):
            raise PkiError(f"{file} has no restapi.connect_address: the REST API's certificate must name the address "
                           "the members and patronictl call", where="restapi")
        host = _host_of(restapi["connect_address"])
        if not host_matches(server, host):
            raise PkiError(f"the certificate {params['cert_path']} does not name {host} (restapi.connect_address in "
                           f"{file}): patronictl and the other members would refuse the REST API; nothing was "
                           "changed", where="cert_path")
    if params.get("reload") and member is not None:
        rest, pg = _address(config, "restapi", file), _address(config, "postgresql", file)
        member.update(scope=str(config.get("scope", "")), member=str(config.get("name", "")), rest_host=rest[0],
                      rest_port=rest[1], pg_host=pg[0], pg_port=pg[1])
        if not member["scope"] or not member["member"]:
            raise PkiError(f"{file} names no scope or name: patronictl reload needs both", where="reload")
    wanted = wanted_settings(params, host_matches(server, "localhost"))
    if etcd:
        dcs = _dcs_section(config, file)
        section = config[dcs]
        if not isinstance(section, dict):
            raise PkiError(f"{file}: {dcs} is not a mapping", where="etcd")
        plain = _plain_etcd_addresses(section)
        if plain:
            raise PkiError(f"{file}: {dcs} names etcd over plain http ({'; '.join(plain)}): write its addresses "
                           "without a scheme (or with https://) so that protocol: https applies", where="etcd")
        wanted.update({((dcs,), "protocol"): "https", ((dcs,), "cacert"): params["ca_path"],
                       ((dcs,), "cert"): etcd["cert_path"], ((dcs,), "key"): etcd["key_path"]})

    before, after, changed_keys = {}, {}, []
    for (path, key), value in wanted.items():
        label = _label(path, key)
        node = _section(config, path, "path", file)
        old = node.get(key)
        before[label] = old
        after[label] = value
        if old != value:
            node[key] = value
            changed_keys.append(label)

    st = os.stat(file)
    attrs = Attrs(mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid)
    data = current_data
    if changed_keys:
        data = _yaml().safe_dump(config, default_flow_style=False, sort_keys=False).encode()
        plan.write(file, data, attrs, kind="file", where="path")
    else:
        plan.keep(file, None, kind="file", where="path")
    if member is not None:
        crl = plan.read(params["crl_path"], "crl_path") if params.get("crl_path") else None
        member["loaded"] = loaded_record(data, crl)
    result = {"changed": bool(changed_keys), "path": file, "changed_keys": changed_keys, "settings": after,
              "dcs": next((name for name in DCS_SECTIONS if ((name,), "protocol") in wanted), None),
              "diff": {"before": _text(before), "after": _text(after), "before_header": f"{file} (TLS keys)",
                       "after_header": f"{file} (TLS keys)"}}
    if changed_keys:
        result["warnings"] = [f"{file} was written again from its parsed YAML: comments in it are gone (the "
                              "keys and values are kept)"] if b"#" in current_data else []
    return result


# Where Patroni's YAML names a CA file, in the order the member's trusted root is read from.
CA_KEYS = ((("postgresql", "parameters"), "ssl_ca_file"), (("restapi",), "cafile"), (("ctl",), "cacert"),
           (("postgresql", "authentication", "replication"), "sslrootcert"), (("etcd3",), "cacert"),
           (("etcd",), "cacert"))


def _value(config: dict, path: tuple, key: str):
    node = config
    for name in path:
        node = node.get(name) if isinstance(node, dict) else None
    return node.get(key) if isinstance(node, dict) else None


def etcd_addresses(section: dict) -> list:
    """(host, port) of each etcd address of Patroni's etcd3/etcd section (host, hosts, url, proxy; 2379 without a
    port), in order, once each."""
    found = []
    for key in ("hosts", "host", "url", "proxy"):
        value = section.get(key)
        for given in value.split(",") if isinstance(value, str) else value if isinstance(value, list) else []:
            address = str(given).strip()
            if not address:
                continue
            parsed = urlparse(address if "://" in address else f"https://{address}")
            try:
                port = parsed.port or 2379
            except ValueError:
                port = None
            if parsed.hostname and port and (parsed.hostname, port) not in found:
                found.append((parsed.hostname, port))
    return found


def _etcd_endpoints(config: dict, probe, timeout: float) -> list:
    """What each etcd address serves: whether its certificate names the host Patroni dials (Patroni checks it)."""
    section = next((config[name] for name in DCS_SECTIONS if isinstance(config.get(name), dict)), None)
    endpoints = []
    for host, port in etcd_addresses(section or {}):
        entry = {"host": host, "port": port, "served": False, "names_host": False, "subject": None, "names": [],
                 "error": None}
        try:
            leaf = probe(host, port, timeout=timeout, direct=True, alpn=None)["chain"][0]
        except PkiError as exc:
            entry["error"] = str(exc)
        else:
            entry.update(served=True, names_host=host_matches(leaf, host), subject=leaf.subject.rfc4514_string(),
                         names=[str(getattr(name, "value", name)) for name in cert_sans(leaf)])
        endpoints.append(entry)
    return endpoints


def _etcd_problems(endpoints: list, file: str) -> list:
    problems = []
    for e in endpoints:
        where = f"etcd at {e['host']}:{e['port']} ({file})"
        if not e["served"]:
            problems.append(f"{where} does not answer a TLS handshake ({e['error']}): over https Patroni could not "
                            "reach it and the member would lose the DCS")
        elif not e["names_host"]:
            problems.append(f"{where} serves {e['subject']}, whose names ({', '.join(e['names']) or 'none'}) do not "
                            f"include {e['host']}: Patroni checks the name and would lose the DCS; issue etcd's "
                            "certificate with that name, or name etcd in Patroni's file as its certificate does")
    return problems


def patroni_info(params: dict, probe=served_chain) -> dict:
    """What a member's Patroni YAML says of its identity and its trust, read only: scope, name, the connect
    addresses' hosts (the names its certificate must carry), the DCS section, and each CA file it names with the
    certificates in it (public material). Nothing else of the file (passwords) is returned."""
    file = params["path"]
    config = _load(read_bytes(file, "path", limit=MAX_CONFIG_BYTES, nofollow=True) or b"", file)
    named: dict[str, list] = {}
    for path, key in CA_KEYS:
        value = _value(config, path, key)
        if isinstance(value, str) and value.strip():
            named.setdefault(value, []).append(_label(path, key))
    ca_files = []
    for ca, keys in named.items():
        data = read_bytes(ca, keys[0], missing_ok=True) if os.path.isabs(ca) else None
        ca_files.append({"file": ca, "named_by": keys, "exists": data is not None,
                         "trusted_root": data.decode("ascii", "replace") if data else None})
    addresses = {}
    for section in ("postgresql", "restapi"):
        value = _value(config, (section,), "connect_address")
        port = str(value).rsplit(":", 1)[-1] if isinstance(value, str) and ":" in value else ""
        if isinstance(value, str) and _host_of(value):
            addresses[section] = {"host": _host_of(value), "port": int(port) if port.isdigit() else None}
    hosts = [addresses[section]["host"] for section in ("restapi", "postgresql") if section in addresses]
    endpoints = _etcd_endpoints(config, probe, params.get("probe_timeout") or 5.0) if params.get("probe_etcd") else []
    return {"changed": False, "path": file, "scope": str(config.get("scope") or ""),
            "name": str(config.get("name") or ""), "dcs": next((s for s in DCS_SECTIONS if s in config), None),
            "connect_hosts": list(dict.fromkeys(hosts)), "addresses": addresses, "ca_files": ca_files,
            "etcd_endpoints": endpoints, "etcd_problems": _etcd_problems(endpoints, file)}


def _text(values: dict) -> str:
    return "".join(f"{label}: {value}\n" for label, value in values.items())


def rest_state(host: str, port: int, ca_path: str, client: tuple[str, str]) -> dict:
    """GET /patroni over mTLS, the server's name checked against its certificate: the member's state, and whether a
    restart is pending (with the parameters that want it: Patroni 4 says which, 3 only that one is)."""
    name = f"[{host}]" if ":" in host else host
    page = open_url(f"https://{name}:{port}/patroni", ca_path=ca_path, client_cert=client[0], client_key=client[1],
                    validate_certs=True, timeout=10, use_proxy=False)
    answer = json.loads(page.read())
    reason = answer.get("pending_restart_reason")
    return {"state": str(answer.get("state", "")), "pending_restart": bool(answer.get("pending_restart")),
            "pending_restart_parameters": sorted(reason) if isinstance(reason, dict) else []}


def rest_loop_wait(host: str, port: int, ca_path: str, client: tuple[str, str]) -> int:
    """GET /config over mTLS: the cluster's loop_wait (Patroni's default, 10, when the DCS does not set it)."""
    name = f"[{host}]" if ":" in host else host
    page = open_url(f"https://{name}:{port}/config", ca_path=ca_path, client_cert=client[0], client_key=client[1],
                    validate_certs=True, timeout=10, use_proxy=False)
    value = json.loads(page.read()).get("loop_wait", 10)
    return value if isinstance(value, int) and 0 < value <= 300 else 10


def loaded_record(config: bytes, crl: bytes | None) -> dict:
    """What a member loads on a reload, as digests: its configuration file and its CRL (PostgreSQL's ssl_crl_file)."""
    return {"config": hashlib.sha256(config).hexdigest(), "crl": hashlib.sha256(crl).hexdigest() if crl else None}


def loaded_path(params: dict) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(params["cert_path"])), LOADED_NAME)


def _record_loaded(plan: Plan, path: str, loaded: dict) -> dict:
    plan.write(path, json.dumps(loaded, sort_keys=True).encode() + b"\n", Attrs(0o600), kind="loaded",
               where="cert_path (its folder)")
    return {}


def read_loaded(path: str) -> dict | None:
    """The record of the member's last proven reload (None: none yet, or not one of ours)."""
    try:
        loaded = json.loads(read_bytes(path, "cert_path", missing_ok=True, limit=4096, nofollow=True) or b"null")
    except (ValueError, PkiError):
        return None
    return loaded if isinstance(loaded, dict) else None


def patroni_config(params: dict, check_mode: bool, run_command=None, probe=served_chain, sleep=time.sleep,
                   commands=None, rest_client=rest_state, loop_wait=rest_loop_wait) -> dict:
    """Two runs on one member at once take turns (the host's lock on the file): one never puts back, or reloads
    against, what the other is in the middle of writing."""
    with host_locked(params["path"], where="path"):
        return _patroni_config(params, check_mode, run_command, probe, sleep, commands, rest_client, loop_wait)


def _patroni_config(params: dict, check_mode: bool, run_command, probe, sleep, commands, rest_client,
                    loop_wait) -> dict:
    path = params["path"]
    previous = Previous(path, WRITER, MAX_CONFIG_BYTES)
    member = {}
    result = run(WRITER, lambda plan: build(params, plan, member), check_mode)
    if not params.get("reload"):
        return result
    ctl = params["ctl"]
    member.update(config_file=path, patronictl=params["patronictl"], ctl_cert_path=ctl["cert_path"],
                  ctl_key_path=ctl["key_path"], rest_client=rest_client, loop_wait=loop_wait,
                  restore=previous.put_back)
    hostnames = list(dict.fromkeys([member["rest_host"], member["pg_host"]]))
    activation = Patroni({"cert_path": params["cert_path"], "key_path": params["key_path"],
                          "ca_path": params["ca_path"], "crl_path": params.get("crl_path"), "hostnames": hostnames,
                          "server_user": params["server_user"], "warn_days": 0,
                          "wait_seconds": params["wait_seconds"], "verify": True, "patroni": member},
                         commands=commands, probe=probe, sleep=sleep, run_command=run_command)
    running = activation.running()
    # PostgreSQL reads ssl_crl_file on a reload only: a CRL written by this run (the caller says so) needs one too,
    # and so does a file or CRL that another run wrote and was stopped before reloading (the record differs).
    served = running and activation.serves_installed()
    record = loaded_path(params)
    unloaded = read_loaded(record) != member["loaded"]
    needed = result["changed"] or params.get("crl_changed") or not served or unloaded
    result["reload_needed"] = running and needed
    # Patroni applies a reload at its next cycle: when the served certificate stays, nothing shows when it did.
    activation.wait_cycle = served
    if not running:
        result.setdefault("warnings", []).append(
            f"Patroni's REST API does not answer at {member['rest_host']}:{member['rest_port']}: the member was not "
            "reloaded, and nothing proves what it serves")
    result["pending_restart"] = False
    if check_mode or not needed:
        result.update(reloaded=False, steps=[])
        return result
    outcome = activation.run()
    result.update(changed=result["changed"] or outcome["reloaded"], reloaded=outcome["reloaded"] and running,
                  steps=outcome["steps"])
    if unloaded:
        # Reloaded and proven (a failed activation raised before this): what the member runs on now; or, when it does
        # not run, what it reads when it starts.
        run(WRITER, lambda plan: _record_loaded(plan, record, member["loaded"]), False)
    pending = activation.pending_restart
    if pending is not None and pending["pending_restart"]:
        # The TLS settings take effect on a reload (PostgreSQL 10+): a pending restart is another setting's.
        which = ", ".join(pending["pending_restart_parameters"]) or "Patroni 3 does not say which parameters"
        result["pending_restart"] = True
        result.setdefault("warnings", []).append(
            f"Patroni says member {member['member']} has a restart pending ({which}): the TLS settings need only the "
            f"reload this run made, so the member was not restarted; restart it when it suits you "
            f"(patronictl restart {member['scope']} {member['member']})")
    return result
