#!/usr/bin/python
# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: cluster_info
short_description: The PostgreSQL clusters of a host, each with its program folder
version_added: 0.2.0
description:
  - Internal to the collection's roles - its options may change in any release; use the P(pgtls.ssl.server#role) role.
  - With O(layout=debian), reads C(/etc/postgresql/<version>/<name>/postgresql.conf) (following its includes) as
    postgresql-common does - no C(pg_lsclusters --json), so no JSON.pm (libjson-perl) is needed, as on a stock
    Debian 11.
  - With O(layout=datadir), reads the data directories matching O(datadir_globs) (configuration inside PGDATA).
  - With O(clusters) given, discovers nothing and completes those entries.
  - Each cluster's program folder C(bin_dir) is, in this order - the O(clusters[].bin_dir) given, the running
    postmaster's own executable (C(/proc/<pid>/exe), else its absolute command name), C(pg_config --bindir) when
    it reports the same major version, or O(bin_dir_default). Missing C(pg_ctl), C(initdb) or C(postgres) there
    are returned by path.
author:
  - pgtls.ssl maintainers (@pgtls)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
    details: Reads only.
  diff_mode:
    support: none
options:
  clusters:
    description: Clusters to describe instead of discovering them (the server role's C(pgtls_clusters)).
    type: list
    elements: dict
    default: []
    suboptions:
      version: {description: Major version., type: int, required: true}
      name: {description: Cluster name or label., type: str, required: true}
      port: {description: Port., type: int, required: true}
      config_dir: {description: Folder of postgresql.conf., type: path, required: true}
      data_dir: {description: Data directory., type: path, required: true}
      service: {description: "systemd unit; empty means no service manager.", type: str, default: ""}
      socket_dir: {description: Unix socket folder., type: path}
      log_file: {description: Server log., type: path}
      running: {description: Whether the cluster runs., type: bool, default: true}
      bin_dir: {description: "Folder of pg_ctl, initdb and postgres (found when not given).", type: path}
  layout:
    description:
      - V(debian) (postgresql-common) or V(datadir) (configuration inside the data directory).
      - When not given, the entry of O(os_defaults) for the host's OS family, else V(debian).
    type: str
    choices: [debian, datadir]
  bin_dir_default:
    description:
      - The layout's program folder; C({version}) is replaced by the major version.
      - When not given, the entry of O(os_defaults) for the host's OS family, else C(/usr/lib/postgresql/{version}/bin).
    type: str
  datadir_globs:
    description:
      - With O(layout=datadir), the data directories to look at (shell patterns).
      - When not given, the entry of O(os_defaults) for the host's OS family, else none.
    type: list
    elements: str
  os_defaults:
    description:
      - Per OS family as Ansible names it (C(Debian), C(RedHat), ...), the values of O(layout), O(bin_dir_default),
        O(datadir_globs) and O(key_group) to use when the task does not give them. The family is the one
        C(ansible_facts.os_family) names, read from the host's C(/etc/os-release) with setup's own family table
        (its C(ID), else the first of its C(ID_LIKE) the table knows, so a derivative takes its parent's family),
        so no facts need gathering.
      - A host whose family has no entry is refused, naming the family, unless O(clusters) describes its clusters.
    type: dict
    version_added: 0.2.0
  probe_ready:
    description:
      - Ask each cluster with C(pg_isready) (its own from C(bin_dir), else the one in C(PATH); no login) - on its
        socket folder, then on 127.0.0.1 - and set C(running) from the answer (0 running; 1 starting or stopping
        and 2 no answer - not running). Without C(pg_isready), C(running) stays as discovered.
    type: bool
    default: false
    version_added: 0.2.0
  trust_file:
    description:
      - A file inside each cluster's configuration folder (for example C(tls/root.crt)) returned as
        C(trusted_root) - the root the cluster trusts now, for the server role's trust check. Only the certificates
        it holds are returned (as PEM); a file that holds a private key is refused, never shown.
    type: str
    version_added: 0.2.0
  key_group:
    description:
      - A group (the root_group key layout's) to check each running postmaster against - returned as
        C(key_group_member). A server joins a group only when it restarts.
      - When not given and O(probe_key_group=true), the entry of O(os_defaults) for the host's OS family.
    type: str
    version_added: 0.2.0
  probe_key_group:
    description: Check the postmasters against O(key_group) or, without it, the OS family's group of O(os_defaults).
    type: bool
    default: false
    version_added: 0.2.0
  require_clusters:
    description:
      - Fail when the host has no cluster (none found, none given in O(clusters)), naming the layout looked at.
    type: bool
    default: false
    version_added: 0.3.0
  inspect:
    description:
      - The cluster step's first stage, in this execution, for every cluster found (what
        M(pgtls.ssl.cluster_tls) decides on without asking the host again) - each cluster's RV(clusters[].inspection)
        holds the key's CSR and the certificate and root in place (the key is made when missing, or in memory only
        without O(inspect.write)), each folder's and file's state (kind, owner, group, mode, a file's C(sha256) -
        never its content), what the server serves, and whether a snapshot an interrupted run left was removed.
      - Every path is relative to the cluster's configuration folder and must stay inside it; each is checked by the
        write planner (no link, no folder where a file goes, no file of another kind, no CA folder file).
    type: dict
    version_added: 0.3.0
    suboptions:
      files:
        description: Files whose state and digest are reported (never their content).
        type: list
        elements: str
        default: []
      directories:
        description: Folders whose state is reported.
        type: list
        elements: str
        default: []
      lines:
        description:
          - Lines the cluster step sets in a file, as M(pgtls.ssl.cluster_files) O(pgtls.ssl.cluster_files#module:lines)
            sets them (lineinfile's rule); the file's state then also carries the digest of its text with them set,
            so the controller knows whether they are in place without reading the file.
        type: list
        elements: dict
        default: []
        suboptions:
          path:
            description: The file, relative to the configuration folder.
            type: str
            required: true
          regexp:
            description: The line to replace (the last that matches).
            type: str
            required: true
          line:
            description: The line to set.
            type: str
            required: true
      snapshot_dir:
        description: The snapshot folder; a snapshot an interrupted run left is removed (with O(inspect.write)).
        type: str
      material:
        description: The server key (made on the host when missing, never read back) and certificate.
        type: dict
        suboptions:
          key_path: {description: The private key file., type: str, required: true}
          cert_path: {description: The certificate file., type: str, required: true}
          root_path: {description: The root file., type: str}
          key_type:
            description: Type of a new key.
            type: str
            default: ec-p256
            choices: [ec-p256, ec-p384, rsa2048, rsa3072, rsa4096, ed25519]
          subject_alt_names:
            description: Names of the CSR (the first is its CN).
            type: list
            elements: str
            default: []
          add_host_names:
            description: Put the host's fqdn and hostname (as setup reports them) after the first name.
            type: bool
            default: false
          key_group:
            description: The key's group is the host's key group (O(key_group), else its O(os_defaults) entry).
            type: bool
            default: false
          owner: {description: Owner of the files (name or uid)., type: str}
          group: {description: Group of the files (name or gid)., type: str}
          key_mode: {description: Mode of the key file., type: str, default: '0600'}
          cert_mode: {description: Mode of the certificate and root files., type: str, default: '0644'}
          create_dir: {description: Create the key's folder when missing., type: bool, default: false}
      client_material:
        description:
          - A client certificate the cluster step handles with the key - M(pgtls.ssl.cluster_tls)'s
            O(pgtls.ssl.cluster_tls#module:client_material), a standby's replication certificate - its key ensured
            (made when O(inspect.write)) and its CSR made like the server key's, in
            C(client_material) of RV(clusters[].inspection). Needs O(inspect.material); its key is of that type.
        type: dict
        version_added: 0.3.0
        suboptions:
          name: {description: "As O(pgtls.ssl.cluster_tls#module:client_material.name).", type: str, required: true}
          dir:
            description: As O(pgtls.ssl.cluster_tls#module:client_material.dir), relative to the configuration folder.
            type: str
            required: true
          owner: {description: "As O(pgtls.ssl.cluster_tls#module:client_material.owner).", type: str}
          group: {description: "As O(pgtls.ssl.cluster_tls#module:client_material.group).", type: str}
      probe:
        description: Report what each running cluster serves on 127.0.0.1 (C(served) in RV(clusters[].inspection)).
        type: bool
        default: true
      write:
        description:
          - Make a missing key (a pending key) and remove a stale snapshot. Without it nothing is written (the
            preflight of site, rotate and revoke changes nothing) and the record says so (C(dry)).
        type: bool
        default: true
      key_group:
        description: With O(inspect.write), the group exists and the user is in it (the root_group key layout).
        type: dict
        suboptions:
          name: {description: The group., type: str, required: true}
          user: {description: The server's user., type: str, required: true}
"""

EXAMPLES = r"""
- name: Find the clusters
  pgtls.ssl.cluster_info:
  register: found

- name: Complete a cluster whose programs live elsewhere
  pgtls.ssl.cluster_info:
    clusters:
      - {version: 16, name: app, port: 5433, config_dir: /srv/pg16, data_dir: /srv/pg16, bin_dir: /opt/pg16/bin}
"""

RETURN = r"""
os_family:
  description: The host's OS family, as C(ansible_facts.os_family) names it.
  returned: success
  type: str
  sample: Debian
host_names:
  description: The host's names as C(ansible.builtin.setup) reports them (C(hostname), C(nodename), C(fqdn)).
  returned: success
  type: dict
  sample: {hostname: db1, nodename: db1.example.com, fqdn: db1.example.com}
defaults:
  description:
    - The O(layout), O(bin_dir_default), O(datadir_globs) and O(key_group) used (given, the OS family's, or the
      fallback).
  returned: success
  type: dict
clusters:
  description: One entry per cluster.
  returned: success
  type: list
  elements: dict
  contains:
    version: {description: Major version., type: int, returned: success}
    name: {description: Cluster name., type: str, returned: success}
    port: {description: Port., type: int, returned: success}
    config_dir: {description: Folder of postgresql.conf., type: str, returned: success}
    data_dir: {description: Data directory., type: str, returned: success}
    service: {description: systemd unit (empty - none)., type: str, returned: success}
    running: {description: Whether a live postmaster owns the data directory., type: bool, returned: success}
    bin_dir: {description: Program folder., type: str, returned: success}
    bin_dir_source: {description: How bin_dir was found., type: str, returned: success}
    missing_programs:
      description: Paths of pg_ctl, initdb or postgres that are missing in bin_dir.
      type: list
      elements: str
      returned: success
    managed_by:
      description:
        - V(patroni) when Patroni writes the cluster's postgresql.conf (it begins with Patroni's header), else null.
      type: str
      returned: success
      version_added: 0.3.0
    ready_code:
      description: pg_isready's exit code (-1 - no pg_isready).
      type: int
      returned: O(probe_ready=true)
    trusted_root:
      description: The text of O(trust_file) in the cluster's configuration folder, or null when missing.
      type: str
      returned: O(trust_file) is set
    pid:
      description: The running postmaster's pid, or null.
      type: int
      returned: success
    inspection:
      description:
        - With O(inspect) - C(material) (the key's path, state and CSR, the certificate and root in place), C(states)
          (per path - C(kind), C(owner), C(group), C(mode), a file's C(sha256) and C(sha256_with_lines)), C(served),
          C(stale_snapshot_removed), C(dry).
      type: dict
      returned: O(inspect) is set
      version_added: 0.3.0
    key_group_member:
      description:
        - Whether the running postmaster is in O(key_group) (false when the group does not exist yet); null when
          no postmaster runs.
      type: bool
      returned: O(key_group) is set or O(probe_key_group=true)
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.errors import PkiError
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.specs import CLUSTER_INFO
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host.accounts import ensure_member
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host.cluster_info import (
    describe,
    host_names,
    nothing_found,
    os_family,
    read_trust_file,
    resolve_defaults,
    with_key_group,
    with_state,
)
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host.inspection import inspect_clusters

NULLABLE = ("trusted_root", "key_group_member", "pid")


def main() -> None:
    module = AnsibleModule(argument_spec=CLUSTER_INFO, supports_check_mode=True)
    params = module.params
    # The OS family as setup names it (from os-release), and the names setup reports: no facts gathered.
    family = os_family()
    try:
        chosen = resolve_defaults(params, family, params["os_defaults"])
        clusters = describe(params["clusters"], chosen["layout"], chosen["bin_dir_default"], chosen["datadir_globs"],
                            run_command=module.run_command)
        if params["require_clusters"] and not clusters:
            raise PkiError(nothing_found(chosen), where="clusters")
        if params["probe_ready"]:
            clusters = with_state(clusters, module.run_command)
        if params["trust_file"]:
            clusters = read_trust_file(clusters, params["trust_file"])
        group_changes = []
        spec = params["inspect"]
        if spec:
            if spec.get("key_group") and spec.get("write", True):
                group_changes = ensure_member(spec["key_group"]["name"], spec["key_group"]["user"], module.check_mode)
            clusters = inspect_clusters(clusters, spec, host_names(), chosen["key_group"], module.check_mode)
        if chosen["key_group"] and (params["key_group"] or params["probe_key_group"]):
            clusters = with_key_group(clusters, chosen["key_group"])
        elif params["probe_key_group"]:
            raise PkiError("no group to check the postmasters against: give key_group, or one in os_defaults",
                           where="key_group")
    except PkiError as exc:
        module.fail_json(msg=str(exc))
    changed = bool(group_changes) or any(
        (c.get("inspection") or {}).get("stale_snapshot_removed") or ((c.get("inspection") or {}).get("material") or {})
        .get("changes") for c in clusters)
    result = {"changed": changed, "os_family": family, "host_names": host_names(), "defaults": chosen,
              "clusters": [{k: v for k, v in c.items() if v is not None or k in NULLABLE} for c in clusters]}
    if spec:
        result["key_group_changes"] = group_changes
    module.exit_json(**result)


if __name__ == "__main__":
    main()
