# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action for pgtls.ssl.cluster_tls: one cluster's key, certificate and files in one host execution when nothing
changed. The host answers once (key ensured there, its CSR, every file compared, what the server serves); the
controller decides and signs; a second execution installs, writes, validates, reloads and proves, only when
something differs."""

from __future__ import annotations

import re

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.checks import RenewPolicy, check_lifetime
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.errors import PkiError
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.info import cert_info
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.issue import load_issuer
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.specs import CLUSTER, CLUSTER_TLS, ISSUER_EXCLUSIVE
from ansible_collections.pgtls.ssl.plugins.plugin_utils._issuance import (
    IssuingAction,
    diff_for,
    pem,
    preflight_key,
    record,
    server_request,
)
from ansible_collections.pgtls.ssl.plugins.plugin_utils._pgconf import server_log_lines

HOST_MODULE = "pgtls.ssl.cluster_files"
FILE_OPTIONS = ("directories", "files", "lines", "snapshot_dir", "snapshot_paths", "snapshot_group", "snapshot_taken",
                "remove_legacy_snapshots", "probe_port", "probe_cert_path")


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
            _validation, params = self.validate_argument_spec(argument_spec=CLUSTER_TLS,
                                                              mutually_exclusive=ISSUER_EXCLUSIVE)
        except AnsibleActionFail as exc:
            result.update(failed=True, msg=str(exc))
            return result
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
        # A failure of the install-and-activate execution says itself what was restored.
        return "" if getattr(self, "applying", False) else super().leftovers_note()

    def ask(self, args: dict) -> dict:
        self.executions += 1
        answer = self._execute_module(module_name=HOST_MODULE, module_args=args, task_vars=self.task_vars)
        if answer.get("failed"):
            msg = self.option_names(answer.get("msg", "the host half failed"))
            if "failed_step" in answer:  # activation failed: the files were restored; the log says why
                msg += " Server log: " + " | ".join(server_log_lines(answer.get("log_tail", "")))
            raise PkiError(msg)
        return answer

    def ensure(self, params: dict) -> dict:
        material = params["material"]
        request = issuer = None
        if material:
            if not (params["issuer_cert_path"] or params["issuer_cert_content"]):
                raise PkiError("material needs the issuing CA: issuer_cert_path or issuer_cert_content",
                               where="issuer_cert_path")
            check_lifetime(material["valid_days"], params["renew_before_days"], params["renew_before_percent"])
            issuer = load_issuer(params, "issuer")
            request = server_request(material, issuer)
            preflight_key(params, issuer)
        files = {name: params[name] for name in FILE_OPTIONS if params[name] is not None}
        # 1. The host, once: key ensured (made there if missing), CSR, every file compared, what is served.
        inspect = self.ask(dict(files, compare_only=True, material=request.item if request else None))
        self.prepared = request is not None
        if request:
            self.decide(request, inspect["material"], issuer,
                        RenewPolicy(days=params["renew_before_days"], percent=params["renew_before_percent"]))
        install = bool(request and request.install)
        changes = list(inspect["changes"])
        result = {"reasons": request.reasons if request else [], "changes": changes, "issued": bool(request and
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
        if (install or changes or result["reasons"] or result["stale"] or (activate and activate["always"])) \
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
        if request and params["record_dir"] and not self._task.check_mode:
            record(params["record_dir"], request.item["common_name"], request.chain[0])
        if request:
            result["certificate"] = cert_info(request.chain[0])
            result["chain_length"] = len(request.chain)
        result["changed"] = bool(result["reasons"] or result["changes"] or "activation" in result)
        if self._task.diff:
            result["diff"] = ([diff_for([request])] if request and request.reasons else []) + inspect.get("diff", [])
        return result
