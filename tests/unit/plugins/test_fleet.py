"""Fleet-level checks and summaries on the controller: a foreign trust anchor is refused naming both roots
(fingerprints from openssl, the oracle); a looped task's failures are named by cluster; the revoke playbook's
endpoints are every cluster and every PgBouncer."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ansible_collections.pgtls.ssl.plugins.plugin_utils._fleet import (
    activation_steps,
    cluster_failures,
    fleet_endpoints,
    hosts_except,
    session_targets,
    trust_problems,
)

PKI = "/srv/pki"


def make_root(tmp: Path, name: str) -> tuple[str, str]:
    """A root made by openssl, and its SHA-256 fingerprint as openssl prints it."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "30", "-subj", f"/CN={name}", "-keyout", str(tmp / f"{name}.key"),
                    "-out", str(tmp / f"{name}.crt")], capture_output=True, check=True)
    out = subprocess.run(["openssl", "x509", "-in", str(tmp / f"{name}.crt"), "-noout", "-fingerprint", "-sha256"],
                         capture_output=True, text=True, check=True).stdout
    return (tmp / f"{name}.crt").read_text(), out.strip().split("=", 1)[1]


def clusters(*contents: str | None) -> list[dict]:
    """One host's clusters as pgtls.ssl.cluster_info returns them with trust_file (trusted_root None: no root.crt)."""
    return [{"version": 15, "name": f"c{index}", "port": 5432 + index, "config_dir": f"/etc/c{index}",
             "trusted_root": content} for index, content in enumerate(contents)]


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("roots")
    return {"ours": make_root(tmp, "Our Root"), "theirs": make_root(tmp, "Their Root")}


def test_same_root_or_nothing_installed_passes(roots):
    ours = roots["ours"][0]
    assert trust_problems([clusters(ours), clusters(None)], ["db1", "db2"], ours, PKI) == []
    assert trust_problems([clusters(None)], ["db1"], "", PKI) == []  # day 0: no CA, nothing trusted yet


@pytest.mark.parametrize("installed", ["theirs", "both", "truncated"])
def test_another_root_is_refused_naming_both(roots, installed):
    (ours, our_fp), (theirs, their_fp) = roots["ours"], roots["theirs"]
    content = {"theirs": theirs, "both": ours + theirs, "truncated": theirs[:200]}[installed]
    problems = trust_problems([clusters(ours), clusters(content)], ["db1", "db2"], ours, PKI)
    if installed == "truncated":  # no certificate in it: nothing trusted, the role repairs the file
        assert problems == []
        return
    assert len(problems) == 1
    msg = problems[0]
    assert f"the CA folder {PKI} holds the root CN=Our Root (SHA-256 {our_fp})" in msg
    trusted = f"CN=Their Root (SHA-256 {their_fp})"
    if installed == "both":  # a bundle is not the CA folder's root either: each of its roots is named
        trusted = f"CN=Our Root (SHA-256 {our_fp}) + {trusted}"
    assert f"db2 15/c0 (root.crt) trusts {trusted}" in msg
    assert "db1" not in msg and "pgtls_accept_new_root=true" in msg and "Nothing was changed." in msg
    assert trust_problems([clusters(ours), clusters(content)], ["db1", "db2"], ours, PKI, accept_new_root=True) == []


def test_empty_ca_folder_with_a_trusting_fleet_is_refused(roots):
    theirs, their_fp = roots["theirs"]
    hosts = [f"db{i}" for i in range(8)]
    problems = trust_problems([clusters(theirs)] * 8, hosts, "", PKI)
    assert f"the CA folder {PKI} holds no root CA (root.crt), so a new root would be made" in problems[0]
    assert "db0 15/c0 (root.crt), db1 15/c0 (root.crt)" in problems[0] and " and 3 more trust " in problems[0]
    assert f"CN=Their Root (SHA-256 {their_fp})" in problems[0] and "db7" not in problems[0]


def test_several_clusters_of_one_host_are_each_named(roots):
    ours, (theirs, their_fp) = roots["ours"][0], roots["theirs"]
    problems = trust_problems([clusters(ours, theirs, None)], ["db1"], ours, PKI)
    assert len(problems) == 1 and "db1 15/c1 (root.crt) trusts CN=Their Root" in problems[0] and their_fp in problems[0]
    assert "15/c0" not in problems[0] and "15/c2" not in problems[0]
    assert trust_problems([clusters(ours, None)], ["db1"], ours, PKI) == []


@pytest.mark.parametrize("shape", [
    {"results": [{"__pgtls_cluster": {"version": 15, "name": "main"}, "content": "LS0t", "source": "root.crt"}]},
    "15/main"])
def test_another_shape_than_the_clusters_is_refused(roots, shape):
    """The registered result of a slurp loop (the shape of releases before 0.3) is no longer read."""
    with pytest.raises(TypeError, match=r"the clusters of db1 must be a list \(pgtls.ssl.cluster_info's clusters"):
        trust_problems([shape], ["db1"], roots["ours"][0], PKI)


def cluster(name: str, version: int = 15) -> dict:
    return {"version": version, "name": name, "port": 5432}


@pytest.mark.parametrize("result, expected", [
    # A loop: only the failed items, each named by its cluster unless its message already starts so.
    ({"failed": True, "msg": "One or more items failed", "results": [
        {"failed": False, "msg": "All assertions passed", "__pgtls_cluster": cluster("main")},
        {"failed": True, "msg": "ssl_groups needs PostgreSQL 18", "__pgtls_cluster": cluster("second", 16)},
        {"failed": True, "msg": "15/third: the server did not serve the new certificate", "__pgtls_cluster": cluster("third")},
        {"failed": True, "__pgtls_cluster": cluster("fourth")},
        {"skipped": True, "__pgtls_cluster": cluster("fifth")}]},
     ["16/second: ssl_groups needs PostgreSQL 18", "15/third: the server did not serve the new certificate",
      "15/fourth: failed"]),
    # Not a loop (a failure before the loop started): its own message, named by nothing.
    ({"failed": True, "msg": "the task includes an option with an undefined variable"},
     ["the task includes an option with an undefined variable"]),
    ({"failed": False, "results": []}, []),
])
def test_cluster_failures(result, expected):
    assert cluster_failures(result) == expected


def test_cluster_failures_reads_another_loop_var():
    result = {"failed": True, "results": [{"failed": True, "msg": "port 443 is privileged", "c": cluster("main")}]}
    assert cluster_failures(result, "c") == ["15/main: port 443 is privileged"]
    assert cluster_failures(result) == ["port 443 is privileged"]  # no __pgtls_cluster in the item: not named


def test_fleet_endpoints_every_cluster_then_every_pgbouncer():
    hostvars = {
        "db1": {"pgtls_server_certificates": [{"cluster": "15/main", "port": 5432}, {"cluster": "16/b", "port": 5433}]},
        "db2": {},  # the role did not run there (failed, or not in this batch): no endpoint
        "pool1": {"pgtls_pgbouncer_databases": [{"name": "app", "host": "db1"}, {"name": "other", "host": "db1"}]},
        "pool2": {"pgtls_pgbouncer_databases": [{"name": "app"}], "pgtls_pgbouncer_listen_port": 7432},
        "pool3": {"pgtls_pgbouncer_databases": []},  # serves nothing: nothing to log in to
    }
    assert fleet_endpoints(["db1", "db2"], hostvars, ["pool1", "pool2", "pool3"]) == [
        {"host": "db1", "port": 5432, "kind": "server"},
        {"host": "db1", "port": 5433, "kind": "server"},
        {"host": "pool1", "port": 6432, "dbname": "app", "kind": "pooler"},
        {"host": "pool2", "port": 7432, "dbname": "app", "kind": "pooler"},
    ]
    assert fleet_endpoints([], hostvars) == []


def test_session_targets_from_the_certificates_rows_and_from_discovered_clusters():
    rows = [{"cluster": "15/main", "port": 5432, "socket_dir": "/run/postgresql", "running": True,
             "crl_path": "/etc/postgresql/15/main/tls/root.crl", "tls_dir": "/etc/postgresql/15/main/tls",
             "days_left": 300},
            {"cluster": "16/b", "port": 5433, "socket_dir": "", "running": False, "crl_path": ""}]
    assert session_targets(rows) == [
        {"label": "15/main", "port": 5432, "socket_dir": "/run/postgresql", "running": True,
         "crl_path": "/etc/postgresql/15/main/tls/root.crl"},
        {"label": "16/b", "port": 5433, "socket_dir": None, "running": False, "crl_path": None}]
    found = [{"version": 15, "name": "main", "port": 5432, "config_dir": "/etc/postgresql/15/main",
              "socket_dir": "/run/postgresql"}]
    assert session_targets(found, "tls/root.crl") == [
        {"label": "15/main", "port": 5432, "socket_dir": "/run/postgresql", "running": True,
         "crl_path": "/etc/postgresql/15/main/tls/root.crl"}]
    assert session_targets(found, "")[0]["crl_path"] is None and session_targets([]) == []


@pytest.mark.parametrize("phase", ["published", "switched", "retired"])
def test_a_root_rotation_overlap_passes_and_a_stranger_still_does_not(roots, tmp_path, phase):
    """During a root rotation the trust files hold the CA folder's two roots (the published next root, or the previous
    one after the switch), and after its retire hosts not yet updated still hold the retired one beside the new: the
    rotation's own roots pass. A root the folder does not know, next to them, is refused as before; after the retire
    a host that trusts the retired root only is refused too (its clients would break)."""
    tmp = tmp_path / "made"
    tmp.mkdir()
    (old, _old_fp), (new, _new_fp) = roots["ours"], make_root(tmp, "Next Root")
    theirs, their_fp = roots["theirs"]
    pki = tmp_path / "pki"
    if phase == "published":
        (pki / "next-root").mkdir(parents=True)
        (pki / "next-root" / "root.crt").write_text(new)
        ca_root = old
    elif phase == "switched":
        (pki / "previous-root").mkdir(parents=True)
        (pki / "previous-root" / "root.crt").write_text(old)
        ca_root = new
    else:
        (pki / "retired").mkdir(parents=True)
        (pki / "retired" / "root-01.pem").write_text(old)
        ca_root = new
    both = [clusters(old + new), clusters(new + old), clusters(new)]
    assert trust_problems(both, ["db1", "db2", "db3"], ca_root, str(pki)) == []
    refused = trust_problems([clusters(old + new + theirs)], ["db1"], ca_root, str(pki))
    assert len(refused) == 1 and f"CN=Their Root (SHA-256 {their_fp})" in refused[0], refused
    only_old = trust_problems([clusters(old)], ["db1"], ca_root, str(pki))
    assert (only_old == []) == (phase != "retired"), only_old


def test_hosts_except_leaves_the_named_hosts_out_of_the_pattern():
    assert hosts_except("pgtls_servers", []) == "pgtls_servers"
    assert hosts_except("pgtls_servers", None) == "pgtls_servers"
    assert hosts_except("pgtls_servers", ["db2", "db3"]) == "pgtls_servers,!db2,!db3"
    # an IPv6 inventory name stays one name (a colon would split it)
    assert hosts_except("pgtls_clients", ["fd00::5"]) == "pgtls_clients,!fd00::5"


def test_activation_steps_one_line_per_step_with_its_time():
    steps = [{"step": "Reload", "status": "changed", "ms": 46}, {"step": "Connect with libpq", "status": "ok", "ms": 0},
             {"step": "Older host", "status": "ok"}]
    assert activation_steps(steps) == ["Reload: changed (46 ms)", "Connect with libpq: ok (0 ms)", "Older host: ok"]
    assert activation_steps(None) == []
