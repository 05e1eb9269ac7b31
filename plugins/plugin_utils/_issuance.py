# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""Controller half of server_cert and client_cert: validate the CA first, ask the host for CSRs (one module
execution), decide and sign here, and install only what changed (a second execution, only when needed).
The CA key never leaves the controller; private keys never leave their host. With ``ca_folder`` (use_ca_folder),
the CA folder's layout names the issuer, its chain and the archive, for every issuing action (cluster_tls too)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

try:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
except ImportError:  # deps.py keeps the error; modules fail with it through deps.require_cryptography()
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.deps import MISSING

    Encoding = x509 = MISSING

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.cafolder.revocation_registry import issuing_record
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core import compat, planner
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.checks import (
    RenewPolicy,
    Wanted,
    check_lifetime,
    reissue_reasons,
)
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.constants import (
    LIBPQ_CERT_FILE,
    LIBPQ_KEY_FILE,
    LIBPQ_ROOT_FILE,
    folder_name,
)
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.errors import PkiError
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.files import Attrs
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.info import cert_info, diff_text, fingerprint, serial_hex
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.issue import (
    Issuer,
    issue_certificate,
    load_issuer,
    signed_by,
)
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.layout import Layout
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.names import build_name, check_role_name, parse_sans
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.profiles import CLIENT, SERVER, SERVER_AND_CLIENT
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.specs import (
    CA_FOLDER_EXCLUSIVE,
    ISSUER_EXCLUSIVE,
    ISSUER_OR_CA_FOLDER,
    OPENBAO_EXCLUSIVE,
)
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host.host_material import host_material
from ansible_collections.pgtls.ssl.plugins.plugin_utils._action import PkiAction

HOST_MODULE = "pgtls.ssl.host_material"


def pem(certs) -> str:
    return "".join(c.public_bytes(Encoding.PEM).decode() for c in certs)


@dataclass
class Request:
    """One certificate to ensure: the host item (paths, key type, owner) and what the certificate must say."""

    item: dict
    wanted: Wanted
    valid_days: int
    root_pem: str | None = None
    # The CRLs written beside the root (a client's root.crl), when asked for.
    crl_pem: str | None = None
    reasons: list = field(default_factory=list)
    chain: list = field(default_factory=list)
    before: dict | None = None
    install: bool = False
    issued: bool = False
    # What the host's prepare stage reported: the owner's home and the group id of the files (client_cert).
    home: str | None = None
    group: int | None = None
    # This certificate's own key policy (a client's rekey_before), else the task's.
    policy: RenewPolicy | None = None


LEFT_ON_THE_HOST = (" (keys made on the host before the failure wait as <key_path>.pgtls-new and are reused by the "
                    "next run; nothing else was changed)")


def decide_material(request: Request, answer: dict, issuer: Issuer, renew: RenewPolicy) -> list[str]:
    """Compare what the host has (its prepare answer) with what is wanted; sign here when needed (in check mode too,
    so a wrong CA passphrase shows up there as well). Only the write is left for the install stage. Returns why the
    host must first make a new key (renew.new_key_reasons; nothing signed yet): the caller asks the host for one
    (its item's ``new_key``) and decides again on that answer; else []."""
    request.reasons.extend(c for c in answer["changes"] if c not in request.reasons)
    public_key = compat.load_csr(answer["csr"].encode(), f"{request.item['name']}: CSR from the host").public_key()
    existing = []
    if answer["certificate"]:
        try:
            existing = compat.load_certificates(answer["certificate"].encode(), request.item["cert_path"])
        except PkiError as exc:
            request.reasons.append(f"the certificate file is unusable ({exc})")
    leaf = existing[0] if existing else None
    request.before = cert_info(leaf) if leaf is not None else None
    renew = request.policy or renew
    reissue = reissue_reasons(leaf, public_key, request.wanted, issuer, renew)
    new_key = renew.new_key_reasons(request.item["common_name"], leaf, public_key, reissue, answer["key"]["state"])
    if new_key:
        request.reasons.extend(new_key)
        return new_key
    if reissue:
        renew.check_signable(request.item["common_name"], public_key)
        if issuer.signer is not None:
            leaf = issuer.signer(answer["csr"], request, renew)
        else:
            leaf = issue_certificate(subject=request.wanted.subject, public_key=public_key,
                                     profile=request.wanted.profile, valid_days=request.valid_days, issuer=issuer,
                                     sans=list(request.wanted.sans))
        request.reasons.extend(reissue)
        request.install = request.issued = True
    request.chain = [leaf, *issuer.intermediates]
    if not request.install and [fingerprint(c) for c in existing] != [fingerprint(c) for c in request.chain]:
        request.reasons.append("the intermediate certificates in the file differ from the issuer's chain")
        request.install = True
    if request.root_pem is not None and answer.get("root") != request.root_pem:
        request.reasons.append("root certificate file differs" if answer.get("root") else "no root certificate file")
        request.install = True
    if request.crl_pem is not None and answer.get("crl") != request.crl_pem:
        request.reasons.append("CRL file differs" if answer.get("crl") else "no CRL file")
        request.install = True
    return []


def renew_policy(params: dict, layout: Layout | None) -> RenewPolicy:
    """The task's renewal and key policy, with the CA folder's record of compromised keys and its revoked serials
    (none without one)."""
    if layout is None:
        return RenewPolicy.from_params(params)
    return RenewPolicy.from_params(params, *issuing_record(layout.folder))


def use_ca_folder(params: dict) -> Layout | None:
    """With ``ca_folder`` (the collection's CA folder): the issuer (its intermediate), the chain (its root) and the
    archive (its issued/) by the folder's layout, in place of the options ca_folder excludes (specs.CA_FOLDER_REPLACES).
    The folder is checked first: a folder, with no symbolic link inside. Returns its layout (None without it)."""
    if not params.get("ca_folder"):
        return None
    planner.check_ca_folder(params["ca_folder"], "ca_folder")
    layout = Layout(params["ca_folder"])
    # During a root rotation the other root (published, or previous) is trusted next to root.crt: load_issuer adds it.
    # With openbao the folder is the engine's mirror: the engine signs, no key is read (use_openbao).
    params.update(issuer_cert_path=layout.intermediate_cert,
                  issuer_key_path=None if params.get("openbao") else layout.intermediate_key,
                  issuer_chain_path=layout.root_cert, record_dir=layout.archive,
                  issuer_also_trusted=layout.overlap_roots())
    return layout


def use_openbao(params: dict, issuer: Issuer | None, host: str) -> EngineSigner | None:
    """With ``openbao``: the PKI engine signs for the issuer, which is the CA folder's mirror of the engine's
    intermediate (pgtls.ssl.ca_folder with openbao keeps it); no CA key is read. Returns the signer (its warnings
    are the engine's), None without openbao."""
    settings = params.get("openbao")
    if not settings:
        return None
    if not params.get("ca_folder") or issuer is None:
        raise PkiError("openbao needs ca_folder: the folder pgtls.ssl.ca_folder keeps with the same openbao settings "
                       "(the engine's root, intermediate and CRLs, mirrored)", where="openbao")
    keys = Layout(params["ca_folder"]).ca_keys()
    if keys:
        raise PkiError(f"{params['ca_folder']} holds {os.path.basename(keys[0])}: a CA of the collection's own, not the "
                       "mirror of an engine; give openbao the mirror's folder (pgtls.ssl.ca_folder with openbao)",
                       where="ca_folder")
    # Imported here: the action's controller has ansible-core's urls; the host modules never load the engine client.
    from ansible_collections.pgtls.ssl.plugins.plugin_utils._openbao import BaoClient, BaoSettings

    signer = EngineSigner(BaoClient(BaoSettings.from_params(settings, "openbao.")), issuer, host)
    issuer.signer = signer
    return signer


class EngineSigner:
    """The engine's sign/<role> for one task: each certificate it returns is checked here before anything is
    installed - for the CSR's key and the names asked for (BaoClient.sign), issued by the mirrored intermediate,
    with the usage PostgreSQL needs, and outside the renewal window (else every run would issue again)."""

    def __init__(self, client, issuer: Issuer, host: str) -> None:
        self.client, self.issuer, self.host = client, issuer, host
        self.warnings: list[str] = []

    def __call__(self, csr_pem: str, request: Request, renew: RenewPolicy):
        sans = request.wanted.sans  # parsed once, by server_request
        dns = [n.value for n in sans if isinstance(n, x509.DNSName)]
        ips = [str(n.value) for n in sans if isinstance(n, x509.IPAddress)]
        if len(dns) + len(ips) != len(sans):
            raise PkiError(f"{self.host}: {request.item['common_name']}: the engine signs DNS names and IP addresses "
                           "only", where="subject_alt_names")
        cn = request.item["common_name"]
        where = f"{self.host}: {cn}" if self.host and self.host != cn else cn
        signed = self.client.sign(csr_pem, cn, dns, ips, request.valid_days, where)
        role = self.client.settings.where("role")
        self.warnings.extend(f"{where}: OpenBao: {w}" for w in signed.warnings)
        leaf = compat.load_certificates(signed.certificate.encode(), where)[0]
        if not signed_by(leaf, self.issuer.cert):
            raise PkiError(f"{where}: the engine signed with {leaf.issuer.rfc4514_string()}, not with the mirrored "
                           f"intermediate {self.issuer.cert.subject.rfc4514_string()} (ca_folder intermediate.crt): "
                           "run pgtls.ssl.ca_folder with openbao to refresh the mirror", where="openbao.int_mount")
        lacking = request.wanted.profile.engine_differences(leaf)
        if lacking:
            usage = {"server": "server_flag", "client": "client_flag"}.get(request.wanted.profile.name,
                                                                           "server_flag and client_flag")
            raise PkiError(f"{where}: the role {self.client.settings.role!r} issued a certificate without the "
                           f"{request.wanted.profile.name} usage PostgreSQL needs ({', '.join(lacking)}): set "
                           f"{usage}=true on the role", where=role)
        early = renew.reasons(leaf, compat.now())
        if early:
            raise PkiError(f"{where}: the role {self.client.settings.role!r} issued a certificate valid until "
                           f"{compat.not_after(leaf).isoformat()} (valid_days {request.valid_days} asked), already due "
                           f"for renewal ({'; '.join(early)}): every run would sign again. Raise the role's max_ttl, "
                           "or lower valid_days and the renewal window", where=role)
        return leaf


def require_ca(layout: Layout) -> None:
    """A CA folder that is to sign holds its CA: the intermediate's certificate and the root (the intermediate's key
    may be kept offline: it is read only when something must be signed). Checked before the host is asked."""
    for path, what in ((layout.intermediate_cert, "intermediate"), (layout.root_cert, "root")):
        if not os.path.lexists(path):
            raise PkiError(f"no {what} CA in ca_folder ({layout.folder}: {os.path.basename(path)} is missing): run "
                           "the site playbook (pgtls.ssl.server) first, or point ca_folder at the CA folder it made")


def ca_folder_words(msg: str) -> str:
    """A message about a file ca_folder stands for (issuer_cert_path (.../intermediate.crt): ...), in the words of the
    option the task gave: ca_folder (.../intermediate.crt): ..."""
    return re.sub(r"\b(?:issuer_(?:cert|key|chain)_path|record_dir)\b", "ca_folder", msg)


class IssuingAction(PkiAction):
    """server_cert and client_cert: subclasses set SPEC and implement requests() and summarize()."""

    MUTUALLY_EXCLUSIVE = ISSUER_EXCLUSIVE + CA_FOLDER_EXCLUSIVE + OPENBAO_EXCLUSIVE
    REQUIRED_ONE_OF = ISSUER_OR_CA_FOLDER

    def operate(self, params: dict) -> dict:
        self.prepared = False
        self.ca_folder = params.get("ca_folder")
        check_lifetime(params["valid_days"], params["renew_before_days"], params["renew_before_percent"],
                       params["run_interval_hours"])
        layout = use_ca_folder(params)
        if layout is not None:
            require_ca(layout)
        self.renew = renew_policy(params, layout)
        issuer = load_issuer(params, "issuer")
        signer = use_openbao(params, issuer, self.task_vars.get("inventory_hostname", ""))
        requests = self.requests(params, issuer)
        preflight_key(params, issuer)
        self.process(params, issuer, requests, self.renew)
        result = self.summarize(params, requests)
        if signer is not None and signer.warnings:
            result["warnings"] = result.get("warnings", []) + signer.warnings
        return result

    def failure(self, msg: str) -> str:
        if getattr(self, "ca_folder", None):
            msg = ca_folder_words(msg)
        return msg + (LEFT_ON_THE_HOST if getattr(self, "prepared", False) and not self._task.check_mode else "")

    # Subclass hooks -------------------------------------------------------------------------------------------
    def requests(self, params: dict, issuer: Issuer) -> list[Request]:
        raise NotImplementedError

    def summarize(self, params: dict, requests: list[Request]) -> dict:
        raise NotImplementedError

    def on_controller(self, params: dict) -> bool:
        return False

    def option_names(self, msg: str) -> str:
        """Say the host half's ``items[i] (name).option`` in the words of this module's options."""
        return msg

    def prepared_item(self, request: Request, answer: dict) -> None:
        """What the host's prepare stage found out about one item (its owner's home, the group its files get)."""

    # The flow ---------------------------------------------------------------------------------------------------
    def host(self, params: dict, stage: str, items: list[dict]) -> list[dict]:
        args = {"stage": stage, "items": items}
        if self.on_controller(params):
            # Bundles written on the controller: the same host logic, run in this process.
            try:
                return host_material(args, self._task.check_mode)["item_results"]
            except PkiError as exc:
                raise PkiError(self.option_names(str(exc))) from None
        return self.execute(HOST_MODULE, args, self.option_names)["item_results"]

    def process(self, params: dict, issuer: Issuer, requests: list[Request], renew: RenewPolicy) -> None:
        if not requests:
            return  # nothing to ensure (every client's name revoked, or none given): the host is not asked
        check_controller_paths(params.get("record_dir"), params.get("ca_folder"),
                               item_paths(requests, self.option_names), issuer_inputs(params))
        prepared = self.host(params, "prepare", [r.item for r in requests])
        self.prepared = True
        rekey = []
        for request, answer in zip(requests, prepared):
            self.prepared_item(request, answer)
            if decide_material(request, answer, issuer, renew):
                rekey.append(request)
        if rekey:
            # A new key first (made on the host as a pending key, activated with its certificate), then signed.
            for request, answer in zip(rekey, self.host(params, "prepare", [dict(r.item, new_key=True)
                                                                            for r in rekey])):
                decide_material(request, answer, issuer, renew)
        to_install = [r for r in requests if r.install]
        if to_install and not self._task.check_mode:
            items = [dict(r.item, certificate=pem(r.chain), root=r.root_pem, crl=r.crl_pem) for r in to_install]
            for request, answer in zip(to_install, self.host(params, "install", items)):
                request.reasons.extend(c for c in answer["changes"] if c not in request.reasons)
        if params.get("record_dir") and not self._task.check_mode:
            for request in requests:
                record(params["record_dir"], request.item["common_name"], request.chain[0], params.get("ca_folder"))


def server_request(params: dict, issuer: Issuer | None) -> Request:
    """The server certificate to ensure, from server_cert's options (cluster_tls's ``material`` has the same).
    Without an issuer (a certificate from your own CA) nothing is signed: the caller fills the chain and root."""
    sans = parse_sans(params["subject_alt_names"], "subject_alt_names")
    if not sans:
        raise PkiError("at least one DNS name or IP address is needed", where="subject_alt_names")
    common_name = params["common_name"] or str(sans[0].value)
    paths = {"key_path": params["key_path"], "cert_path": params["cert_path"], "csr_path": params.get("csr_path"),
             "root_cert_path": params["root_cert_path"]}
    seen = {}
    for option, path in paths.items():
        if path and os.path.normpath(path) in seen:
            raise PkiError(f"{path} is also given as {seen[os.path.normpath(path)]}: each file needs its own path",
                           where=option)
        if path:
            seen[os.path.normpath(path)] = option
    if params["root_cert_path"] and issuer is not None and issuer.root is None:
        raise PkiError("root_cert_path needs the root: give it in issuer_chain_path or issuer_chain_content",
                       where="root_cert_path")
    item = {"name": "server", "key_path": params["key_path"], "cert_path": params["cert_path"],
            "csr_path": params.get("csr_path"), "root_path": params["root_cert_path"], "key_type": params["key_type"],
            "common_name": common_name, "subject_alt_names": params["subject_alt_names"], "owner": params["owner"],
            "group": params["group"], "key_mode": params["key_mode"], "cert_mode": params["cert_mode"],
            "create_dir": params["create_dir"], "create_parents": params["create_dir"]}
    profile = SERVER_AND_CLIENT if params.get("client_auth") else SERVER
    wanted = Wanted(build_name(common_name, params["subject"]), tuple(sans), profile)
    root_pem = pem(issuer.trusted) if params["root_cert_path"] and issuer is not None else None
    return Request(item=item, wanted=wanted, valid_days=params["valid_days"], root_pem=root_pem)


def client_request(client: dict, key_type: str, valid_days: int, issuer: Issuer, where: str) -> Request:
    """A client certificate a service presents to PostgreSQL (cluster_tls's ``client_material``: PgBouncer's), in
    libpq's file names inside its folder; the CN is the role name."""
    check_role_name(client["name"], f"{where}.name")
    if issuer.root is None:
        raise PkiError("root.crt needs the root certificate: give it in issuer_chain_path or issuer_chain_content",
                       where="issuer_chain_path")
    folder = client["dir"]
    item = {"name": client["name"], "key_path": os.path.join(folder, LIBPQ_KEY_FILE),
            "cert_path": os.path.join(folder, LIBPQ_CERT_FILE), "root_path": os.path.join(folder, LIBPQ_ROOT_FILE),
            "key_type": key_type, "common_name": client["name"], "owner": client["owner"], "group": client["group"],
            "key_mode": "0600", "cert_mode": "0644", "create_dir": True}
    wanted = Wanted(build_name(client["name"], None, cn_where=f"{where}.name"), (), CLIENT)
    return Request(item=item, wanted=wanted, valid_days=valid_days, root_pem=pem(issuer.trusted))


def preflight_key(params: dict, issuer: Issuer) -> None:
    """Load the CA key before the host is asked for anything when it is at hand (content, or an existing file), so
    a wrong passphrase or a key of another CA fails before any key is made. A key kept offline (path absent) is
    needed only if something must be signed."""
    path = params.get("issuer_key_path")
    if params.get("issuer_key_content") or (path and os.path.exists(path)):
        issuer.key()


def check_controller_paths(record_dir: str | None, ca_folder: str | None, host_paths: dict, inputs: dict) -> None:
    """Before the host is asked for anything: no file the controller reads (the issuer's) is one of the host's files
    (the same path on a host that is the controller itself), and the archive (record_dir) is a real folder (or can
    be made), in a CA folder only as its issued/ folder, naming none of the task's other files."""
    for option, path in inputs.items():
        for where, other in host_paths.items():
            if path and other and os.path.normpath(os.path.abspath(path)) == os.path.normpath(os.path.abspath(other)):
                raise PkiError(f"{path} is also {where}: the CA's files are never the host's", where=option)
    if not record_dir:
        return
    given = {os.path.normpath(os.path.abspath(record_dir)), os.path.realpath(record_dir)}
    for where, path in list(host_paths.items()) + list(inputs.items()):
        if path and (os.path.normpath(os.path.abspath(path)) in given or os.path.realpath(path) in given):
            raise PkiError(f"{record_dir} is also {where}: the archive needs a folder of its own", where="record_dir")
    plan = planner.Plan("archive", ca_folders=[ca_folder])
    plan.options({"record_dir": record_dir}, {k: v for k, v in inputs.items() if v})
    plan.claim(record_dir, kind="folder", where="record_dir")
    plan.folders(record_dir, Attrs(0o750), where="record_dir", base=record_dir)
    plan.check()
    problem = planner.not_writable(record_dir) if os.path.isdir(record_dir) else None
    if problem:
        raise PkiError(f"cannot write in {record_dir}: {problem}", where="record_dir")


def item_paths(requests: list[Request], words) -> dict:
    """The host files of the requests, by the option that names them in the task's words (``words``: the action's
    option_names)."""
    found = {}
    for index, request in enumerate(requests):
        item = request.item
        for option in ("key_path", "cert_path", "csr_path", "root_path", "crl_path", "pkcs8_path", "pkcs12_path",
                       "base_dir"):
            if item.get(option):
                found[words(f"items[{index}] ({item['name']}).{option}")] = item[option]
        found[words(f"items[{index}] ({item['name']}).key_path") + " (its folder)"] = os.path.dirname(
            item["key_path"])
    return found


def issuer_inputs(params: dict) -> dict:
    return {name: params.get(name) for name in ("issuer_cert_path", "issuer_key_path", "issuer_chain_path")}


def record(record_dir: str, name: str, leaf, ca_folder: str | None = None) -> None:
    """Archive a leaf on the controller as <record_dir>/<name>/<SERIAL>.crt, once (the revoke playbook reads it). An
    archived file is never replaced: one that holds another certificate is refused. ``ca_folder``: the CA folder
    the archive belongs to, as the task named it (it may be a link; any other link into a CA folder is refused)."""
    folder = os.path.join(record_dir, folder_name(name))
    path = os.path.join(folder, serial_hex(leaf.serial_number).replace(":", "") + ".crt")
    data = leaf.public_bytes(Encoding.PEM)

    def build(plan: planner.Plan) -> dict:
        plan.folders(folder, Attrs(0o750), where="record_dir", base=record_dir)
        plan.write(path, data, Attrs(0o644), kind="archive", where="record_dir")
        return {}

    planner.run("archive", build, False, ca_folders=[ca_folder])


def diff_for(requests: list[Request]) -> dict:
    before = "".join(f"[{r.item['name']}]\n{diff_text(r.before)}" for r in requests if r.reasons)
    after = "".join(f"[{r.item['name']}]\n{diff_text(cert_info(r.chain[0]))}" for r in requests if r.reasons)
    return {"before": before, "after": after}
