# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""TLS of an etcd member, through etcd's environment file (pgtls.ssl.etcd_config, pgtls.ssl.etcd_info).

etcd reads its settings from ``ETCD_*`` variables - on Debian and Ubuntu ``/etc/default/etcd``, on RHEL and in
autobase ``/etc/etcd/etcd.conf``, a systemd ``EnvironmentFile`` either way. The member's TLS is set there:

- clients: ``ETCD_CERT_FILE``, ``ETCD_KEY_FILE``, ``ETCD_TRUSTED_CA_FILE``, ``ETCD_CLIENT_CERT_AUTH=true``;
- peers: ``ETCD_PEER_CERT_FILE``, ``ETCD_PEER_KEY_FILE``, ``ETCD_PEER_TRUSTED_CA_FILE``,
  ``ETCD_PEER_CLIENT_CERT_AUTH=true`` (one certificate, with serverAuth and clientAuth: a peer dials the others);
- CRLs: ``ETCD_CLIENT_CRL_FILE`` and ``ETCD_PEER_CRL_FILE``. etcd uses only the **first** CRL of the file, so the
  file is written with the CRL of the certificate's issuer first (from a bundle such as the CA folder's).

Only those lines change; every other line (comments included) stays as it is. URLs over plain ``http://`` are
refused: moving a running etcd cluster from http to https is a migration of its peers and clients, not a TLS setting.

etcd reads the file only when it starts, and reads its trusted CA file only then too; it reads its own certificate
and key again at each handshake. So the engine (activation.Etcd) restarts the member when the file changed or the CA
file holds another text than ``trusted_before`` (read before the run), and otherwise only waits until the member
serves the installed certificate; either way it proves the member with ``GET /health`` over mTLS (its name checked)
before the next member's turn.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import stat
import time
import urllib.request
from urllib.parse import urlparse

from ..core import compat
from ..core.chain import verify_chain
from ..core.errors import PkiError
from ..core.files import Attrs, check_distinct, read_bytes
from ..core.keys import load_private_key, same_public_key
from ..core.names import host_matches
from ..core.planner import Plan, host_locked, run
from ..core.probe import served_chain
from .activation import Etcd
from .snapshot import Previous

WRITER = "etcd_config"
MAX_ENV_BYTES = 256 * 1024
LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
# The URL variables: (variable, what it is); every URL in them must be https.
URL_KEYS = (("ETCD_LISTEN_CLIENT_URLS", "client"), ("ETCD_ADVERTISE_CLIENT_URLS", "client"),
            ("ETCD_LISTEN_PEER_URLS", "peer"), ("ETCD_INITIAL_ADVERTISE_PEER_URLS", "peer"),
            ("ETCD_INITIAL_CLUSTER", "peer"))
# The variables that must name the member's certificate's hosts (what clients and peers dial).
NAMED_KEYS = ("ETCD_ADVERTISE_CLIENT_URLS", "ETCD_INITIAL_ADVERTISE_PEER_URLS")
CA_KEYS = ("ETCD_TRUSTED_CA_FILE", "ETCD_PEER_TRUSTED_CA_FILE")
UNSAFE = re.compile(r"[\"'`$\\\s]")


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value.split(" #", 1)[0].strip()


def parse(data: bytes, path: str) -> tuple[list[str], dict]:
    """The file's lines, and each variable's value (the last one wins, as in systemd and a shell)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PkiError(f"{path} is not UTF-8 text: is it etcd's environment file?", where="path") from None
    if "\0" in text:
        raise PkiError(f"{path} holds NUL bytes: is it etcd's environment file?", where="path")
    lines, values = text.splitlines(), {}
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        found = LINE.match(line)
        if not found:
            raise PkiError(f"{path} line {number} is not VARIABLE=value: is it etcd's environment file (as "
                           "/etc/default/etcd)? Nothing was changed", where="path")
        values[found.group(1)] = _unquote(found.group(2))
    if not any(name.startswith("ETCD_") for name in values):
        raise PkiError(f"{path} sets no ETCD_ variable: is it etcd's environment file?", where="path")
    return lines, values


def urls(values: dict, key: str) -> list[str]:
    """The URLs of a variable (ETCD_INITIAL_CLUSTER: name=url pairs)."""
    found = []
    for given in values.get(key, "").split(","):
        item = given.strip()
        if key == "ETCD_INITIAL_CLUSTER" and "=" in item:
            item = item.split("=", 1)[1].strip()
        if item:
            found.append(item)
    return found


def _host(url: str) -> str:
    return urlparse(url).hostname or ""


def plain_urls(values: dict) -> list[str]:
    return [f"{key}: {url}" for key, _kind in URL_KEYS for url in urls(values, key) if urlparse(url).scheme != "https"]


def member_hosts(values: dict) -> list[str]:
    """The hosts clients and peers dial this member by (its certificate must name each)."""
    return list(dict.fromkeys(_host(url) for key in NAMED_KEYS for url in urls(values, key) if _host(url)))


def endpoint(values: dict, key: str) -> tuple[str, int] | None:
    for url in urls(values, key):
        parsed = urlparse(url)
        try:
            port = parsed.port
        except ValueError:
            port = None
        if parsed.hostname and port:
            return parsed.hostname, port
    return None


def wanted_settings(params: dict) -> dict:
    wanted = {"ETCD_CERT_FILE": params["cert_path"], "ETCD_KEY_FILE": params["key_path"],
              "ETCD_TRUSTED_CA_FILE": params["ca_path"], "ETCD_CLIENT_CERT_AUTH": "true",
              "ETCD_PEER_CERT_FILE": params["cert_path"], "ETCD_PEER_KEY_FILE": params["key_path"],
              "ETCD_PEER_TRUSTED_CA_FILE": params["ca_path"], "ETCD_PEER_CLIENT_CERT_AUTH": "true"}
    if params.get("crl_path"):
        wanted.update(ETCD_CLIENT_CRL_FILE=params["crl_path"], ETCD_PEER_CRL_FILE=params["crl_path"])
    return wanted


def _crl_file(plan: Plan, params: dict, issuer) -> bytes:
    """The CRLs of crl_bundle, the one the member's issuer signed first (etcd reads the first CRL only)."""
    from cryptography.hazmat.primitives.serialization import Encoding  # the module reports a missing cryptography

    source = params["crl_bundle"]
    crls = compat.load_crls(plan.read(source, "crl_bundle") or b"", f"crl_bundle ({source})")
    first = [crl for crl in crls if crl.issuer == issuer]
    if not first:
        raise PkiError(f"crl_bundle {source} holds no CRL of {issuer.rfc4514_string()}, the issuer of cert_path: etcd "
                       "reads the first CRL of its file only and would not see that CA's revocations", where="crl_bundle")
    ordered = first[:1] + [crl for crl in crls if crl is not first[0]]
    return b"".join(crl.public_bytes(Encoding.PEM) for crl in ordered)


def build(params: dict, plan: Plan, member: dict | None = None) -> dict:
    file = params["path"]
    outputs = {"path": file, "crl_path": params.get("crl_path") if params.get("crl_bundle") else None}
    inputs = {"cert_path": params["cert_path"], "key_path": params["key_path"], "ca_path": params["ca_path"],
              "crl_bundle": params.get("crl_bundle")}
    if params.get("crl_bundle") and not params.get("crl_path"):
        raise PkiError("crl_bundle is written to crl_path, the file etcd reads: give crl_path", where="crl_path")
    plan.options(outputs)
    for where, given in inputs.items():
        check_distinct({**outputs, where: given})
        plan.input(given, where)
    if not outputs["crl_path"] and params.get("crl_path"):
        plan.input(params["crl_path"], "crl_path")
    for where in ("cert_path", "key_path", "ca_path", "crl_path"):
        if params.get(where) and UNSAFE.search(params[where]):
            raise PkiError(f"{params[where]}: a quote, $, backslash or blank in a path would be read differently by "
                           "systemd and a shell; use a plain path", where=where)

    ca_text = plan.read(params["ca_path"], "ca_path") or b""
    anchors = plan.certificates(params["ca_path"], "ca_path")
    chain = plan.certificates(params["cert_path"], "cert_path")
    key = load_private_key(plan.read(params["key_path"], "key_path") or b"", None, f"key_path ({params['key_path']})")
    if not same_public_key(chain[0].public_key(), key):
        raise PkiError(f"the key {params['key_path']} does not match the certificate {params['cert_path']} (cert_path); "
                       "nothing was changed", where="key_path")
    for purpose in ("server", "client"):
        problems = verify_chain(chain, anchors, purpose=purpose)
        if problems:
            raise PkiError(f"{params['cert_path']} does not verify against ca_path {params['ca_path']} as a {purpose} "
                           f"certificate ({'; '.join(problems)}): etcd's peers present it as clients too (issue it with "
                           "client_auth); nothing was changed", where="cert_path")

    current = plan.read(file, "path", limit=MAX_ENV_BYTES)
    lines, values = parse(current or b"", file)
    plain = plain_urls(values)
    if plain:
        raise PkiError(f"{file} has URLs over plain http ({'; '.join(plain)}): moving a running etcd cluster to https is "
                       "a migration of its peers and clients, not a TLS setting - write https URLs (a new cluster) "
                       "or migrate first; nothing was changed", where="path")
    client = endpoint(values, "ETCD_ADVERTISE_CLIENT_URLS")
    if client is None:
        raise PkiError(f"{file} has no ETCD_ADVERTISE_CLIENT_URLS with a host and port: the member is proven there",
                       where="path")
    unnamed = [host for host in member_hosts(values) if not host_matches(chain[0], host)]
    if unnamed:
        raise PkiError(f"the certificate {params['cert_path']} does not name {', '.join(unnamed)} (the advertised URLs "
                       f"in {file}): clients and peers check the name and would refuse the member; nothing was changed",
                       where="cert_path")
    if member is not None:
        before = params.get("trusted_before")
        member.update(trust_changed=before is not None and before.strip() != ca_text.decode("ascii", "replace").strip(),
                      client=client, peer=endpoint(values, "ETCD_INITIAL_ADVERTISE_PEER_URLS"),
                      name=values.get("ETCD_NAME", ""), hosts=member_hosts(values))

    wanted = wanted_settings(params)
    before = {key: values.get(key) for key in wanted}
    changed_keys = [key for key, value in wanted.items() if values.get(key) != value]
    st = os.stat(file)
    attrs = Attrs(mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid)
    if changed_keys:
        plan.write(file, render(lines, wanted), attrs, kind="file", where="path")
    else:
        plan.keep(file, None, kind="file", where="path")
    crl_changed = False
    if outputs["crl_path"]:
        data = _crl_file(plan, params, chain[0].issuer)
        crl_attrs = Attrs(mode=0o644, uid=st.st_uid, gid=st.st_gid)
        crl_changed = bool(plan.write(outputs["crl_path"], data, crl_attrs, kind="crl", where="crl_path"))
    return {"changed": bool(changed_keys) or crl_changed, "path": file, "changed_keys": changed_keys,
            "settings": wanted, "name": values.get("ETCD_NAME", ""), "hosts": member_hosts(values),
            "crl_changed": crl_changed,
            "diff": {"before": _text(before), "after": _text(wanted), "before_header": f"{file} (TLS variables)",
                     "after_header": f"{file} (TLS variables)"}}


def render(lines: list[str], wanted: dict) -> bytes:
    """The file with each wanted variable's lines set (every occurrence, its place kept), new ones at the end."""
    out, seen = [], set()
    for line in lines:
        found = LINE.match(line) if line.strip() and not line.lstrip().startswith("#") else None
        if found and found.group(1) in wanted:
            seen.add(found.group(1))
            out.append(f'{found.group(1)}="{wanted[found.group(1)]}"')
        else:
            out.append(line)
    missing = [key for key in wanted if key not in seen]
    if missing:
        out += ["# TLS (pgtls.ssl)"] + [f'{key}="{wanted[key]}"' for key in missing]
    return ("\n".join(out) + "\n").encode()


def _text(values: dict) -> str:
    return "".join(f"{key}={'' if value is None else value}\n" for key, value in values.items())


def etcd_info(params: dict) -> dict:
    """What a member's environment file says of its identity and its trust, read only: name, client and peer URLs,
    the hosts they advertise, and each trusted CA file with its certificates (public material)."""
    file = params["path"]
    _lines, values = parse(read_bytes(file, "path", limit=MAX_ENV_BYTES, nofollow=True) or b"", file)
    named: dict[str, list] = {}
    for key in CA_KEYS:
        if values.get(key):
            named.setdefault(values[key], []).append(key)
    ca_files = []
    for ca, keys in named.items():
        data = read_bytes(ca, keys[0], missing_ok=True) if os.path.isabs(ca) else None
        ca_files.append({"file": ca, "named_by": keys, "exists": data is not None,
                         "trusted_root": data.decode("ascii", "replace") if data else None})
    client, peer = endpoint(values, "ETCD_ADVERTISE_CLIENT_URLS"), endpoint(values, "ETCD_INITIAL_ADVERTISE_PEER_URLS")
    return {"changed": False, "path": file, "name": values.get("ETCD_NAME", ""),
            "client_urls": urls(values, "ETCD_ADVERTISE_CLIENT_URLS"),
            "peer_urls": urls(values, "ETCD_INITIAL_ADVERTISE_PEER_URLS"), "hosts": member_hosts(values),
            "client_address": {"host": client[0], "port": client[1]} if client else None,
            "peer_address": {"host": peer[0], "port": peer[1]} if peer else None,
            "plain_urls": plain_urls(values), "ca_files": ca_files,
            "tls": {key: values.get(key) for key in wanted_settings({"cert_path": "", "key_path": "", "ca_path": "",
                                                                     "crl_path": "-"})}}


def health(host: str, port: int, ca_path: str, client: tuple[str, str], timeout: float = 10) -> str:
    """GET /health over mTLS, the member's name checked against its certificate: etcd's answer ("true" when the
    member has a leader and answers)."""
    context = ssl.create_default_context(cafile=ca_path)
    context.load_cert_chain(client[0], client[1])
    name = f"[{host}]" if ":" in host else host
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context),
                                         urllib.request.ProxyHandler({}))
    with opener.open(f"https://{name}:{port}/health", timeout=timeout) as page:
        return str(json.loads(page.read()).get("health", ""))


def etcd_config(params: dict, check_mode: bool, run_command=None, probe=served_chain, sleep=time.sleep,
                commands=None, health_client=health) -> dict:
    """Two runs on one member at once take turns (the host's lock on the file)."""
    with host_locked(params["path"], where="path"):
        previous = Previous(params["path"], WRITER, MAX_ENV_BYTES)
        member: dict = {}
        result = run(WRITER, lambda plan: build(params, plan, member), check_mode)
        if not params.get("activate"):
            return result
        member.update(restart_command=params["restart_command"], health=health_client,
                      restore=previous.put_back)
        activation = Etcd({"cert_path": params["cert_path"], "key_path": params["key_path"],
                           "ca_path": params["ca_path"], "crl_path": None, "hostnames": member["hosts"],
                           "server_user": params["server_user"], "warn_days": 0,
                           "wait_seconds": params["wait_seconds"], "verify": True, "etcd": member,
                           "restart": bool(result["changed_keys"]) or member["trust_changed"]},
                          commands=commands, probe=probe, sleep=sleep, run_command=run_command)
        running = activation.running()
        restart = running and activation.p["restart"]
        needed = restart or (running and not activation.serves_installed())
        result["restart_needed"] = restart
        if not running:
            result.setdefault("warnings", []).append(
                f"etcd does not answer at {member['client'][0]}:{member['client'][1]}: the member was not restarted, "
                "and nothing proves what it serves (it reads the file when it starts)")
        if check_mode or not running:
            result.update(restarted=False, steps=[])
            return result
        if not needed:  # it serves the installed certificate (read again at each handshake): healthy before the next?
            result.update(restarted=False, steps=activation.healthy())
            return result
        outcome = activation.run()
        result.update(changed=True, restarted=restart, steps=outcome["steps"])
        return result
