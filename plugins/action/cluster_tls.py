# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action for pgtls.ssl.cluster_tls: one cluster's key, certificate and files in one host execution when nothing
changed. The host answers once (key ensured there, its CSR, every file compared, what the server serves); the
controller decides and signs; a second execution installs, writes, validates, reloads and proves, only when
something differs."""

from __future__ import annotations

import os
import re

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core import compat, planner
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.checks import RenewPolicy, check_lifetime
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.errors import PkiError
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.files import Attrs, read_bytes
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.info import cert_info
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.issue import load_issuer
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.layout import Layout
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.specs import (
    CLUSTER,
    CLUSTER_TLS,
    ISSUER_EXCLUSIVE,
    VALIDATE,
)
from ansible_collections.pgtls.ssl.plugins.plugin_utils._issuance import (
    IssuingAction,
    check_controller_paths,
    diff_for,
    issuer_inputs,
    item_paths,
    pem,
    preflight_key,
    record,
    server_request,
)
from ansible_collections.pgtls.ssl.plugins.plugin_utils._pgconf import server_log_lines

HOST_MODULE = "pgtls.ssl.cluster_files"
FILE_OPTIONS = ("directories", "files", "lines", "snapshot_dir", "snapshot_paths", "snapshot_group", "snapshot_taken",
                "remove_legacy_snapshots", "probe_port", "probe_cert_path")
# Asked once, in the first execution (the second finds the group in place).
FIRST_ONLY = ("key_group",)


class ActionModule(IssuingAction):
    SPEC = CLUSTER_TLS

    def option_names(self, msg):
        # The host half names the key and certificate "items[0] (server).<option>": here they are material's.
        return re.sub(r"items\[0\] \(server\)\.(\w+)",
                      lambda m: "material." + {"root_path": "root_cert_path"}.get(m.group(1), m.group(1)), msg)

    def run(self, tmp=None, task_vars=None):
        result = ActionBase.run(self, tmp, task_vars)
        del tmp
        try:
            _validation, params = self.validate_argument_spec(
                argument_spec=CLUSTER_TLS, mutually_exclusive=ISSUER_EXCLUSIVE + [
                    ("ca_folder", name) for name in ("issuer_cert_path", "issuer_cert_content", "issuer_key_path",
                                                     "issuer_key_content", "issuer_chain_path", "issuer_chain_content",
                                                     "record_dir")])
        except AnsibleActionFail as exc:
            result.update(failed=True, msg=str(exc))
            return result
        if params["ca_folder"]:
            try:
                planner.check_ca_folder(params["ca_folder"], "ca_folder")
            except PkiError as exc:
                result.update(failed=True, msg=str(exc))
                return result
            layout = Layout(params["ca_folder"])
            params.update(issuer_cert_path=layout.intermediate_cert, issuer_key_path=layout.intermediate_key,
                          issuer_chain_path=layout.root_cert, record_dir=layout.archive)
        self.executions = 0
        self.task_vars = task_vars
        self.prepared = False
        try:
            result.update(self.ensure(params))
        except PkiError as exc:
            result.update(failed=True, msg=str(exc) + self.leftovers_note())
        except Exception as exc:  # the module boundary: never a raw traceback for the user
            result.update(failed=True, msg=f"unexpected error ({type(exc).__name__}): {exc}; no file was changed "
                          f"after it{self.leftovers_note()}")
        result["module_executions"] = self.executions
        return result

    def leftovers_note(self) -> str:
        # A failure of the install-and-activate execution says itself what was restored; so does the wait for
        # your own CA's certificate.
        if getattr(self, "applying", False) or getattr(self, "said_what_stays", False):
            return ""
        return super().leftovers_note()

    def ask(self, args: dict) -> dict:
        self.executions += 1
        answer = self._execute_module(module_name=HOST_MODULE, module_args=args, task_vars=self.task_vars)
        if answer.get("failed"):
            msg = self.option_names(answer.get("msg", "the host half failed"))
            if "failed_step" in answer:  # activation failed: the files were restored; the log says why
                msg += " Server log: " + " | ".join(server_log_lines(answer.get("log_tail", "")))
            raise PkiError(msg)
        return answer

    def check_your_ca(self, request, external: dict, params: dict, host_paths: dict) -> None:
        """Before the host is asked: your CA's files name files of their own, the CSR's place can be written (in a CA
        folder only in its external/ folder), and the certificate, root and CRLs that are already there are checked
        as PostgreSQL and libpq will check them."""
        # cryptography's verification helpers, imported here (the controller has them; the sanity test does not).
        from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host.validate import validate

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
        checks = {name: entry.get("default") for name, entry in VALIDATE.items()}
        checks.update(certificate_path=external["cert_path"], ca_path=external["root_path"],
                      crl_path=external["crl_path"], hostnames=list(request.item["subject_alt_names"]),
                      warn_days=params["renew_before_days"])
        try:
            found = validate(checks)
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
            self.said_what_stays = True
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

    def ensure(self, params: dict) -> dict:
        material, external = params["material"], params["external"]
        request = issuer = None
        if external and not material:
            raise PkiError("external needs material (the key on the host and the files your certificate goes to)",
                           where="external")
        if external:
            external = dict(external, crl_path=external["crl_path"] or None)
            request = server_request(material, None)
        elif material:
            if not (params["issuer_cert_path"] or params["issuer_cert_content"]):
                raise PkiError("material needs the issuing CA: issuer_cert_path or issuer_cert_content",
                               where="issuer_cert_path")
            check_lifetime(material["valid_days"], params["renew_before_days"], params["renew_before_percent"])
            issuer = load_issuer(params, "issuer")
            request = server_request(material, issuer)
            preflight_key(params, issuer)
        files = {name: params[name] for name in FILE_OPTIONS if params[name] is not None}
        if request:
            paths = {**item_paths([request], self.option_names), "snapshot_dir": params["snapshot_dir"],
                     **{f"files[{i}].path": f["path"] for i, f in enumerate(params["files"])},
                     **{f"directories[{i}].path": d["path"] for i, d in enumerate(params["directories"])},
                     **{f"lines[{i}].path": line["path"] for i, line in enumerate(params["lines"])}}
            check_controller_paths(params["record_dir"], params["ca_folder"], paths, issuer_inputs(params))
            if external:
                self.check_your_ca(request, external, params, paths)
        # 1. The host, once: key ensured (made there if missing), CSR, every file compared, what is served.
        first = {name: params[name] for name in FIRST_ONLY if params[name] is not None}
        inspect = self.ask(dict(files, compare_only=True, material=request.item if request else None, **first))
        self.prepared = request is not None
        if external:
            self.from_your_ca(request, inspect["material"], external, params)
        elif request:
            self.decide(request, inspect["material"], issuer,
                        RenewPolicy(days=params["renew_before_days"], percent=params["renew_before_percent"]))
        install = bool(request and request.install)
        changes = list(inspect["changes"])
        result = {"reasons": request.reasons if request else [], "changes": changes,
                  "key_group_changes": inspect.get("key_group_changes", []), "issued": bool(request and
                  request.issued), "snapshot_taken": False,
                  "stale_snapshot_removed": inspect.get("stale_snapshot_removed", False)}
        if "served" in inspect:
            result["served"] = inspect["served"]
        if inspect.get("legacy_snapshots_removed"):
            result["legacy_snapshots_removed"] = inspect["legacy_snapshots_removed"]
        # 2. Only when something differs, or the server serves another certificate than the one installed (a run
        # interrupted before its reload), and never in check mode: install, write (the snapshot first), then
        # validate with PostgreSQL, reload and prove in the same execution; restored on failure.
        served = inspect.get("served")
        result["stale"] = bool(served and not served["matches_file"] and not (install or changes or result["reasons"]))
        activate = params["activate"]
        if (install or changes or result["reasons"] or (activate and (result["stale"] or activate["always"]))) \
                and not self._task.check_mode:
            item = dict(request.item, certificate=pem(request.chain), root=request.root_pem) if install else None
            args = dict(files, material=item)
            if activate:
                args["activate"] = dict(activate, always=True, crl_path=activate["crl_path"] or None,
                                        cluster={k: v for k, v in activate["cluster"].items() if k in CLUSTER})
            self.applying = True
            applied = self.ask(args)
            result["changes"] = applied["changes"]
            result["snapshot_taken"] = applied["snapshot_taken"]
            if "activation" in applied:
                result["activation"] = applied["activation"]
            if item:
                request.reasons.extend(c for c in applied["material"]["changes"] if c not in request.reasons)
        if request and params["record_dir"] and not external and not self._task.check_mode:
            record(params["record_dir"], request.item["common_name"], request.chain[0], params["ca_folder"])
        if request:
            result["certificate"] = cert_info(request.chain[0])
            result["chain_length"] = len(request.chain)
            if activate:
                result["summary"] = summary(activate["cluster"], material, result)
        if getattr(self, "csr_written", False):
            result["csr_written"] = True
        result["changed"] = bool(result["reasons"] or result["changes"] or "activation" in result or
                                 result.get("csr_written") or result["key_group_changes"])
        if self._task.diff:
            result["diff"] = ([diff_for([request])] if request and request.reasons else []) + inspect.get("diff", [])
        return result


def summary(cluster: dict, material: dict, result: dict) -> dict:
    """One row for the role's callers (pgtls_server_certificates): the cluster and the certificate it has now."""
    cert = result["certificate"]
    return {"cluster": f"{cluster['version']}/{cluster['name']}", "port": cluster["port"],
            "running": cluster.get("running", True), "tls_dir": os.path.dirname(material["cert_path"]),
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
