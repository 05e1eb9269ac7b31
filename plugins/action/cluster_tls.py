# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action for pgtls.ssl.cluster_tls: one cluster's key, certificate and files - the cluster step.

inspect: the host's record of what is there - given (``inspection``: pgtls.ssl.cluster_info made it with the
discovery, so an unchanged cluster costs no execution of its own), or asked for (pgtls.ssl.cluster_files,
compare_only); decide: here (plugin_utils/_cluster_step.compare, and _issuance.decide_material signs, or your own
CA's certificate is checked); apply: one more execution, only when something differs - install, write, validate,
reload, prove, restore on failure."""

from __future__ import annotations

import os
import re

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core import compat, planner
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.checks import check_lifetime
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.errors import PkiError
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.files import Attrs, read_bytes
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.info import cert_info
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.issue import load_issuer
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.specs import (
    CA_FOLDER_EXCLUSIVE,
    CLUSTER,
    CLUSTER_TLS,
    ISSUER_EXCLUSIVE,
    OPENBAO_EXCLUSIVE,
)
from ansible_collections.pgtls.ssl.plugins.plugin_utils._action import PkiAction
from ansible_collections.pgtls.ssl.plugins.plugin_utils._cluster_step import compare
from ansible_collections.pgtls.ssl.plugins.plugin_utils._issuance import (
    LEFT_ON_THE_HOST,
    Request,
    check_controller_paths,
    client_request,
    decide_material,
    diff_for,
    issuer_inputs,
    item_paths,
    pem,
    preflight_key,
    record,
    renew_policy,
    require_ca,
    server_request,
    use_ca_folder,
    use_openbao,
)
from ansible_collections.pgtls.ssl.plugins.plugin_utils._pgconf import server_log_lines

HOST_MODULE = "pgtls.ssl.cluster_files"
FILE_OPTIONS = ("directories", "files", "lines", "snapshot_dir", "snapshot_paths", "snapshot_group",
                "remove_legacy_snapshots", "probe_port", "probe_cert_path", "lock_timeout")
# key_group goes with the first execution only (the apply execution finds the group in place).


class ActionModule(PkiAction):
    SPEC = CLUSTER_TLS
    MUTUALLY_EXCLUSIVE = ISSUER_EXCLUSIVE + CA_FOLDER_EXCLUSIVE + OPENBAO_EXCLUSIVE + [("openbao", "external")]

    # The stages, named: what a failure leaves behind depends on which one it stopped in.
    stage = "decide"

    def option_names(self, msg: str) -> str:
        # The host half names the key and certificate "items[0] (server).<option>": here they are material's; the
        # client certificate's files (items[1]) are client_material.dir's.
        msg = re.sub(r"items\[1\] \([^)]*\)\.(\w+)",
                     lambda m: "client_material." + ("dir" if m.group(1).endswith("_path") else m.group(1)), msg)
        return re.sub(r"items\[0\] \(server\)\.(\w+)",
                      lambda m: "material." + {"root_path": "root_cert_path"}.get(m.group(1), m.group(1)), msg)

    def arguments(self, args: dict) -> dict:
        # activate.cluster is a cluster as pgtls.ssl.cluster_info returns it: the keys the activation does not use
        # (its inspection among them) are left out.
        activate = args.get("activate")
        if isinstance(activate, dict) and isinstance(activate.get("cluster"), dict):
            cluster = {k: v for k, v in activate["cluster"].items() if k in CLUSTER}
            args = dict(args, activate=dict(activate, cluster=cluster))
        return args

    def failure(self, msg: str) -> str:
        if self.stage == "apply":
            # The apply execution says itself what was restored; the server log's lines that explain it follow.
            log = getattr(self, "log_tail", "")
            return msg + (" Server log: " + " | ".join(server_log_lines(log)) if log else "")
        if self.stage == "asked" and not self._task.check_mode:
            return msg + LEFT_ON_THE_HOST
        return msg

    # The stages -------------------------------------------------------------------------------------------------
    def operate(self, params: dict) -> dict:
        layout = use_ca_folder(params)
        material, external = params["material"], params["external"]
        if layout is not None and (material or params["client_material"]) and not external:
            require_ca(layout)  # it is to sign: before the host is asked for anything
        if external and not material:
            raise PkiError("external needs material (the key on the host and the files your certificate goes to)",
                           where="external")
        issuer = None
        if external:
            external = dict(external, crl_path=external["crl_path"] or None)
            request = server_request(material, None)
        elif material:
            if not (params["issuer_cert_path"] or params["issuer_cert_content"]):
                raise PkiError("material needs the issuing CA: issuer_cert_path or issuer_cert_content",
                               where="issuer_cert_path")
            check_lifetime(material["valid_days"], params["renew_before_days"], params["renew_before_percent"],
                           params["run_interval_hours"])
            issuer = load_issuer(params, "issuer")
            self.signer = use_openbao(params, issuer, self.task_vars.get("inventory_hostname", ""))
            request = server_request(material, issuer)
            preflight_key(params, issuer)
        else:
            request = None
        client = None
        if params["client_material"]:
            if issuer is None:
                raise PkiError("client_material needs material and the collection's CA (ca_folder or issuer_*), not "
                               "external", where="client_material")
            client = client_request(params["client_material"], material["key_type"], material["valid_days"], issuer,
                                    "client_material")
            _own_folder(params["client_material"]["dir"], params, request)
        self.renew = renew_policy(params, layout if issuer is not None else None)
        self.pair = (request, client)  # as cluster_files names them: material, client_material
        self.requests = [r for r in self.pair if r]
        files = {name: params[name] for name in FILE_OPTIONS if params[name] is not None}
        if params["snapshot_dir"]:
            files["snapshot_paths"] = snapshot_paths(params, self.requests)
        if request and not files.get("probe_cert_path"):
            files["probe_cert_path"] = request.item["cert_path"]
        if request:
            paths = {**item_paths(self.requests, self.option_names), "snapshot_dir": params["snapshot_dir"],
                     **{f"files[{i}].path": f["path"] for i, f in enumerate(params["files"])},
                     **{f"directories[{i}].path": d["path"] for i, d in enumerate(params["directories"])},
                     **{f"lines[{i}].path": line["path"] for i, line in enumerate(params["lines"])}}
            check_controller_paths(params["record_dir"], params["ca_folder"], paths, issuer_inputs(params))
            if external:
                self.check_your_ca(request, external, params, paths)
        inspection = self.inspect(params, request, client, files)
        result = self.decide(params, request, client, issuer, external, inspection, files)
        if result.pop("apply") and not self._task.check_mode:
            self.apply(params, request, files, result)
        elif _left_snapshot(params, inspection) and not self._task.check_mode:
            # Nothing to change and nothing to activate, but a run stopped before its end left its snapshot: the host
            # removes it (with an activation, decide() made it an interrupted run: validated, reloaded and proven).
            self.stage = "asked"
            asked = self.execute(HOST_MODULE, dict(files, compare_only=True, **self.items()), self.option_names)
            result["stale_snapshot_removed"] = asked["stale_snapshot_removed"]
        elif result.pop("ask_in_check_mode", False) and self._task.check_mode:
            # Check mode: the host checks what would change (the write planner's refusals show here too).
            self.stage = "asked"
            asked = self.execute(HOST_MODULE, dict(files, compare_only=True, **self.items()), self.option_names)
            result["changes"], result["diffs"] = asked["changes"], asked.get("diff") or []
        if params["record_dir"] and not external and not self._task.check_mode:
            for done in self.requests:
                record(params["record_dir"], done.item["common_name"], done.chain[0], params["ca_folder"])
        reported = self.report(params, request, client, result)
        signer = getattr(self, "signer", None)
        if signer is not None and signer.warnings:
            # With a stopped cluster's warning (report), not instead of it.
            reported["warnings"] = reported.get("warnings", []) + signer.warnings
        return reported

    def items(self, install: bool = False) -> dict:
        """The host items, as cluster_files takes them: to prepare (the CSR), or to install (with the chain)."""
        found = {}
        for option, request in zip(("material", "client_material"), self.pair):
            if request is None:
                found[option] = None
            elif not install:
                found[option] = request.item
            elif request.install:
                found[option] = dict(request.item, certificate=pem(request.chain), root=request.root_pem)
            else:
                found[option] = None
        return found

    def inspect(self, params: dict, request: Request | None, client: Request | None, files: dict) -> dict:
        """The host's record: the one cluster_info made (when it is for this task's files and key), else asked."""
        given = params["inspection"]
        if given and _covers(given, request, params) and _covers_client(given, client):
            return given
        self.stage = "asked"
        first = {"key_group": params["key_group"]} if params["key_group"] else {}
        return self.execute(HOST_MODULE, dict(files, compare_only=True, **self.items(), **first), self.option_names)

    def decide(self, params: dict, request: Request | None, client: Request | None, issuer, external: dict | None,
               inspection: dict, files: dict) -> dict:
        """Sign (or take your own CA's certificate) and compare the files, here; say whether to apply."""
        if external:
            self.from_your_ca(request, inspection["material"], external, params)
        rekey = {option: r for option, r in zip(("material", "client_material"), self.pair)
                 if r and not (external and r is request) and decide_material(r, inspection[option], issuer,
                                                                              self.renew)}
        if rekey:
            # A new key first: the host makes it (a pending key, activated with its certificate) and its CSR is
            # signed; one more execution, only when a key is replaced.
            self.stage = "asked"
            items = {option: dict(r.item, new_key=True) if option in rekey else None
                     for option, r in zip(("material", "client_material"), self.pair)}
            answer = self.execute(HOST_MODULE, dict(files, compare_only=True, **items), self.option_names)
            for option, again in rekey.items():
                decide_material(again, answer[option], issuer, self.renew)
        decision = compare(params, inspection.get("states") or {})
        install = any(r.install for r in self.requests)
        served = inspection.get("served")
        stale = bool(served and not served["matches_file"] and not (install or decision.changes or
                                                                    any(r.reasons for r in self.requests)))
        activate = params["activate"]
        changed = bool(install or decision.changes or any(r.reasons for r in self.requests))
        # Nothing differs, yet a run stopped before its end left its snapshot: it may have written files (a CRL, a
        # pg_hba.conf rule) that the server has not loaded, whatever certificate it serves.
        interrupted = activate is not None and not changed and _left_snapshot(params, inspection)
        return {"reasons": request.reasons if request else [], "changes": decision.changes,
                "diffs": inspection.get("diff") or [],
                "install": install, "stale": stale, "interrupted": interrupted, "snapshot_taken": False,
                "stale_snapshot_removed": inspection.get("stale_snapshot_removed", False),
                "served": served, "complete": decision.complete,
                # Something differs, the server serves another certificate than the one installed, or a run stopped
                # before its end (its reload may not have happened): the apply execution; never in check mode.
                "apply": changed or (activate is not None and (stale or interrupted or activate["always"]))
                or not decision.complete,
                "ask_in_check_mode": (changed or not decision.complete) and params["inspection"] is not None}

    def apply(self, params: dict, request: Request | None, files: dict, result: dict) -> None:
        """Install, write (the snapshot first), then validate, reload and prove - in one execution; restored on
        any failure."""
        items = self.items(install=True)
        args = dict(files, **items)
        activate = params["activate"]
        if activate:
            derived = {"cert_path": request.item["cert_path"], "key_path": request.item["key_path"],
                       "ca_path": request.item["root_path"]} if request else {}
            # The host activates when it writes something; without a write only for a stale server (or always).
            args["activate"] = dict(activate, always=activate["always"] or result["stale"] or result["interrupted"],
                                    crl_path=activate["crl_path"] or None,
                                    **{k: activate[k] or derived.get(k) for k in ("cert_path", "key_path", "ca_path")})
            client = self.pair[1]
            if activate["pgbouncer"] and client:
                args["activate"]["pgbouncer"] = dict(activate["pgbouncer"], **{
                    f"client_{part}_path": activate["pgbouncer"][f"client_{part}_path"] or client.item[f"{part}_path"]
                    for part in ("cert", "key")})
        self.stage = "apply"
        try:
            applied = self.execute(HOST_MODULE, args, self.option_names)
        except PkiError as exc:
            self.log_tail = getattr(exc, "details", {}).get("log_tail", "")
            raise
        result["changes"], result["diffs"] = applied["changes"], applied.get("diff") or []
        result["snapshot_taken"] = applied["snapshot_taken"]
        result["stale_snapshot_removed"] = applied["stale_snapshot_removed"]
        if "activation" in applied:
            result["activation"] = applied["activation"]
        for option, done in zip(("material", "client_material"), self.pair):
            if items[option]:
                done.reasons.extend(c for c in applied[option]["changes"] if c not in done.reasons)

    def report(self, params: dict, request: Request | None, client: Request | None, result: dict) -> dict:
        diffs = result.pop("diffs")
        result.pop("install")
        result.pop("complete")
        if result["served"] is None:
            result.pop("served")
        if request:
            result["issued"] = request.issued
            result["certificate"] = cert_info(request.chain[0])
            result["chain_length"] = len(request.chain)
            if params["activate"]:
                result["summary"] = summary(params["activate"]["cluster"] or params["activate"]["pgbouncer"],
                                            params["material"], result, params["activate"].get("crl_path"))
        else:
            result["issued"] = False
        if client:
            result.update(client_issued=client.issued, client_reasons=client.reasons,
                          client_certificate=cert_info(client.chain[0]))
        if getattr(self, "csr_written", False):
            result["csr_written"] = True
        # Check mode says that a real run would reload and prove a stale or interrupted server.
        result["changed"] = bool(result["reasons"] or result["changes"] or "activation" in result or
                                 result.get("csr_written") or result.get("client_reasons") or
                                 (self._task.check_mode and (result["stale"] or result["interrupted"])))
        if self._task.diff:
            result["diff"] = ([diff_for(self.requests)] if any(r.reasons for r in self.requests) else []) + diffs
        cluster = (params["activate"] or {}).get("cluster")
        if cluster and not cluster["running"]:
            result.update(self.stopped(cluster, params["allow_stopped"]))
        return result

    def stopped(self, cluster: dict, allowed: bool) -> dict:
        """A cluster that does not run: its files are in place and checked without the server, not proven."""
        where = f"{cluster['version']}/{cluster['name']}"
        host = self.task_vars.get("inventory_hostname", "this host")
        if allowed:
            return {"warnings": [f"not running, so not proven: {where} on {host}; the files are in place and checked "
                                 "without the server, and take effect when it starts"]}
        return {"failed": True, "msg": f"PostgreSQL is not running on {host}: {where} (port {cluster['port']}). Its "
                "files are in place and were checked without the server, but nothing proves that PostgreSQL accepts "
                "them and serves the certificate (a bad file would keep it from starting). Start it and run again, "
                "or set pgtls_allow_stopped=true (allow_stopped) to accept stopped clusters."}

    # Your own CA ------------------------------------------------------------------------------------------------
    def check_your_ca(self, request, external: dict, params: dict, host_paths: dict) -> None:
        """Before the host is asked: your CA's files name files of their own, the CSR's place can be written (in a CA
        folder only in its external/ folder), and the certificate, root and CRLs that are already there are checked
        as PostgreSQL and libpq will check them."""
        # cryptography's verification helpers, imported here (the controller has them; the sanity test does not).
        from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host.validate import check

        names = {"external.csr_path": external["csr_path"], "external.cert_path": external["cert_path"],
                 "external.root_path": external["root_path"], "external.crl_path": external["crl_path"]}
        for option, path in names.items():
            for where, other in host_paths.items():
                if path and other and os.path.normpath(os.path.abspath(path)) == os.path.normpath(os.path.abspath(
                        other)):
                    raise PkiError(f"{path} is also {where}: your CA's files are files of their own", where=option)
        plan = planner.Plan("cluster_tls", ca_folders=[params["ca_folder"]])
        plan.options({"external.csr_path": external["csr_path"]},
                     {k: v for k, v in names.items() if k != "external.csr_path" and v})
        plan.claim(external["csr_path"], kind="csr", where="external.csr_path")
        plan.folders(os.path.dirname(os.path.abspath(external["csr_path"])), Attrs(0o755), where="external.csr_path")
        plan.check()
        for option in ("external.cert_path", "external.root_path", "external.crl_path"):
            path = names[option]
            if path and os.path.lexists(path) and not os.path.isfile(path):
                raise PkiError(f"{path} is not a regular file", where=option)
        if not all(os.path.isfile(p) for p in (external["cert_path"], external["root_path"], external["crl_path"])
                   if p):
            return  # not signed yet: the run asks for them once the CSR is written
        try:
            found = check(certificate_path=external["cert_path"], ca_path=external["root_path"],
                          crl_path=external["crl_path"], hostnames=list(request.item["subject_alt_names"]),
                          warn_days=params["renew_before_days"])
        except PkiError as exc:
            raise PkiError(_external_words(str(exc))) from None
        if not found["ok"]:
            raise PkiError(_external_words(f"{external['cert_path']}: {found['msg']}"))

    def from_your_ca(self, request, answer: dict, external: dict, params: dict) -> None:
        """Your own CA signs: the host's CSR goes next to where your certificate is expected (written for a new key
        or a missing file only - a CSR's bytes differ on every signing); your certificate (checked before the host
        was asked) is then installed (the host refuses it when it is not for its key)."""
        request.reasons.extend(answer["changes"])
        csr_path = external["csr_path"]
        if not os.path.exists(csr_path) or answer["key"]["state"] != "present":
            def build(plan: planner.Plan) -> dict:
                plan.folders(os.path.dirname(os.path.abspath(csr_path)), Attrs(0o755), where="external.csr_path")
                plan.write(csr_path, answer["csr"].encode(), Attrs(0o644), kind="csr", where="external.csr_path")
                return {}

            planner.run("cluster_tls", build, self._task.check_mode)
            self.csr_written = True
        missing = [p for p in (external["cert_path"], external["root_path"], external["crl_path"]) if p and
                   not os.path.isfile(p)]
        if missing:
            where = self.task_vars.get("inventory_hostname", "")
            cluster = (params["activate"] or {}).get("cluster") or {}
            if cluster:
                where += f" {cluster.get('version')}/{cluster.get('name')}"
            crls = f" and the CRLs of every CA as {external['crl_path']}" if external["crl_path"] else ""
            self.stage = "waiting"  # the message says what stays
            raise PkiError(f"{where}: sign {csr_path} with your CA and save the certificate (leaf, then "
                           f"intermediates) as {external['cert_path']}, your root as {external['root_path']}{crls}, "
                           "then run again. The key (and its folder) stay on the host; nothing else was changed.")
        chain_pem, root_pem = (_text(external[name]) for name in ("cert_path", "root_path"))
        request.chain = compat.load_certificates(chain_pem.encode(), external["cert_path"])
        request.root_pem = root_pem
        if answer["certificate"] != chain_pem:
            request.reasons.append(f"certificate from {external['cert_path']}")
            request.install = True
        if request.item["root_path"] and answer.get("root") != root_pem:
            request.reasons.append(f"root from {external['root_path']}")
            request.install = True


def _covers(inspection: dict, request: Request | None, params: dict) -> bool:
    """Is a given inspection for this task: the same key (path and type), one on disk (a dry inspection made a
    missing key in memory only), and a state for every path the task names?"""
    answer = inspection.get("material")
    if request is not None and (not answer or answer["key"]["path"] != request.item["key_path"]
                                or answer["key"]["type"] != request.item["key_type"]
                                or (inspection.get("dry") and answer["key"]["state"] not in ("present", "pending"))):
        return False
    states = inspection.get("states") or {}
    paths = [entry["path"] for name in ("directories", "files", "lines") for entry in params[name]]
    return all(path in states or os.path.normpath(path) in states for path in paths)


def _covers_client(inspection: dict, client: Request | None) -> bool:
    """The client certificate (client_material) in a given inspection: the same key (path and type), on disk."""
    if client is None:
        return True
    answer = inspection.get("client_material")
    return bool(answer) and answer["key"]["path"] == client.item["key_path"] and \
        answer["key"]["type"] == client.item["key_type"] and \
        not (inspection.get("dry") and answer["key"]["state"] not in ("present", "pending"))


def snapshot_paths(params: dict, requests: list[Request]) -> list[str]:
    """What the snapshot holds: every file the task writes (each request's key, certificate and root, the files and
    the line files), and the snapshot_paths given besides; each once, in that order."""
    paths = [item[name] for request in requests for item in (request.item,)
             for name in ("key_path", "cert_path", "root_path") if item.get(name)]
    paths += [entry["path"] for name in ("files", "lines") for entry in params[name]] + params["snapshot_paths"]
    seen, out = set(), []
    for path in paths:
        if os.path.normpath(path) not in seen:
            seen.add(os.path.normpath(path))
            out.append(path)
    return out


def _own_folder(folder: str, params: dict, request: Request) -> None:
    """The client certificate's folder holds a key: a folder of its own, made 0700 for it - not one the task names
    for other files (directories, the server's TLS folder, the snapshot)."""
    mine = os.path.normpath(os.path.abspath(folder))
    others = {f"directories[{i}].path": d["path"] for i, d in enumerate(params["directories"])}
    others.update({"material.key_path (its folder)": os.path.dirname(request.item["key_path"]),
                   "material.cert_path (its folder)": os.path.dirname(request.item["cert_path"]),
                   "snapshot_dir": params["snapshot_dir"]})
    for where, other in others.items():
        if other and os.path.normpath(os.path.abspath(other)) == mine:
            raise PkiError(f"{folder} is also {where}: the client certificate's key needs a folder of its own",
                           where="client_material.dir")


def _left_snapshot(params: dict, inspection: dict) -> bool:
    """Did the (dry) inspection find a snapshot that nothing removed?"""
    folder = params["snapshot_dir"]
    state = (inspection.get("states") or {}).get(folder) if folder else None
    return bool(state and state["kind"] != "missing" and not inspection.get("stale_snapshot_removed"))


def summary(cluster: dict, material: dict, result: dict, crl_path: str | None = None) -> dict:
    """One row for the role's callers (pgtls_server_certificates, pgtls_pgbouncer_certificate): the cluster (or
    PgBouncer), where it listens and reads its CRL (the revoke playbook ends the sessions it revokes there), and the
    certificate it has now."""
    cert = result["certificate"]
    return {"cluster": f"{cluster['version']}/{cluster['name']}" if "version" in cluster else f"pgbouncer:"
            f"{cluster['port']}", "port": cluster["port"],
            "running": cluster.get("running", True), "tls_dir": os.path.dirname(material["cert_path"]),
            "socket_dir": cluster.get("socket_dir") or "", "crl_path": crl_path or "",
            "not_after": cert["not_after"], "days_left": cert["days_left"],
            "fingerprint_sha256": cert["fingerprint_sha256"], "issuer": cert["issuer"], "reasons": result["reasons"]}


def _external_words(msg: str) -> str:
    """validate's option names, in the words of cluster_tls's external options."""
    for ours, theirs in (("certificate_path", "external.cert_path"), ("ca_path", "external.root_path"),
                         ("crl_path", "external.crl_path")):
        msg = msg.replace(ours, theirs)
    return msg


def _text(path: str) -> str:
    """A PEM file as the host will hold it: its text, ending with one newline."""
    return read_bytes(path, path).decode(errors="replace").rstrip() + "\n"
