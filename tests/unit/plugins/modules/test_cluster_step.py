"""The cluster step's contract: inspect (discovery's own execution) -> decide (the controller) -> apply (one more
execution, only when something differs). An unchanged cluster costs discovery's execution and nothing more; a dry
inspection (the preflight's: nothing written) that lacks a key, or that does not cover the task, makes the host be
asked; check mode asks the host before reporting a change. Modules run in this process (inprocess.py)."""

from __future__ import annotations

import os

import pytest
from inprocess import run
from pkitools import tree

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.compat import load_certificates
from ansible_collections.pgtls.ssl.plugins.plugin_utils._cluster_step import compare

INSPECT = {"files": ["pg_hba.conf", "postgresql.conf"], "directories": ["tls"], "snapshot_dir": "tls/.snap",
           "lines": [{"path": "postgresql.conf", "regexp": "^include_dir", "line": "include_dir = 'conf.d'"}],
           "material": {"key_path": "tls/server.key", "cert_path": "tls/server.crt", "root_path": "tls/root.crt",
                        "subject_alt_names": ["db1.example.com"], "create_dir": True}}


@pytest.fixture
def fleet(tmp_path):
    pki, conf = tmp_path / "pki", tmp_path / "conf"
    assert not run("ca_folder", {"path": str(pki), "root_common_name": "Root", "intermediate_common_name": "CA"}).get(
        "failed")
    conf.mkdir()
    (conf / "postgresql.conf").write_text("port = 5432\n")
    (conf / "pg_hba.conf").write_text("local all all peer\n")
    return tmp_path


def discover(root, write=True):
    found = run("cluster_info", {"clusters": [{"version": 15, "name": "main", "port": 5432,
                                               "config_dir": str(root / "conf"), "data_dir": str(root / "data")}],
                                 "inspect": dict(INSPECT, write=write)})
    assert not found.get("failed"), found.get("msg")
    return found["clusters"][0]["inspection"]


def task(root, content="hostssl all all all cert\n"):
    conf = root / "conf"
    return {"material": {"key_path": str(conf / "tls/server.key"), "cert_path": str(conf / "tls/server.crt"),
                         "root_cert_path": str(conf / "tls/root.crt"), "subject_alt_names": ["db1.example.com"],
                         "create_dir": True},
            "directories": [{"path": str(conf / "tls"), "mode": "0750"}],
            "files": [{"path": str(conf / "pg_hba.conf"), "content": content, "mode": "0640"}],
            "lines": [{"path": str(conf / "postgresql.conf"), "regexp": "^include_dir", "line": "include_dir = 'conf.d'"}],
            "snapshot_dir": str(conf / "tls/.snap"), "ca_folder": str(root / "pki")}


def step(root, inspection=None, check_mode=False, content="hostssl all all all cert\n"):
    args = task(root, content)
    if inspection is not None:
        args["inspection"] = inspection
    done = run("cluster_tls", args, check_mode=check_mode)
    assert not done.get("failed"), done.get("msg")
    return done


def test_an_unchanged_cluster_costs_discovery_alone(fleet):
    # First rollout: discovery makes the key (write), the controller signs, one execution applies.
    first = step(fleet, discover(fleet))
    assert first["changed"] and first["issued"] and first["module_executions"] == 1
    assert (fleet / "conf/pg_hba.conf").read_text() == "hostssl all all all cert\n"
    # Every later run: discovery's execution only - the decision needs no host.
    before = tree(fleet / "conf")
    again = step(fleet, discover(fleet, write=False))
    assert not again["changed"] and again["module_executions"] == 0, again
    assert tree(fleet / "conf") == before


def test_a_change_found_by_the_inspection_is_applied_in_one_execution(fleet):
    step(fleet, discover(fleet))
    (fleet / "conf/pg_hba.conf").write_text("local all all trust\n")
    done = step(fleet, discover(fleet, write=False))
    assert done["changed"] and done["module_executions"] == 1
    assert done["changes"] == [f"{fleet}/conf/pg_hba.conf: content changed"]
    assert (fleet / "conf/pg_hba.conf").read_text() == "hostssl all all all cert\n"


def test_a_dry_inspection_without_a_key_makes_the_host_be_asked(fleet):
    inspection = discover(fleet, write=False)
    assert inspection["dry"] and inspection["material"]["key"]["state"] == "created"
    assert not (fleet / "conf/tls").exists()  # the preflight changed nothing
    done = step(fleet, inspection)
    assert done["changed"] and done["module_executions"] == 2  # asked (the key made), then applied


def test_an_inspection_of_other_files_is_not_trusted(fleet):
    step(fleet, discover(fleet))
    inspection = discover(fleet, write=False)
    del inspection["states"][str(fleet / "conf/pg_hba.conf")]
    done = step(fleet, inspection)
    assert not done["changed"] and done["module_executions"] == 1  # asked, found nothing to change


def test_check_mode_asks_the_host_before_it_reports_a_change(fleet):
    step(fleet, discover(fleet))
    before = tree(fleet / "conf")
    done = step(fleet, discover(fleet, write=False), check_mode=True, content="local all all trust\n")
    assert done["changed"] and done["module_executions"] == 1
    assert tree(fleet / "conf") == before


def test_a_snapshot_left_by_a_stopped_run_is_removed_though_nothing_changes(fleet):
    step(fleet, discover(fleet))
    snap = fleet / "conf/tls/.snap"
    snap.mkdir()
    (snap / "_etc_x").write_text("a copy")  # what a run killed before its end leaves
    done = step(fleet, discover(fleet, write=False))
    assert not done["changed"] and done["stale_snapshot_removed"] and not snap.exists()
    assert done["module_executions"] == 1


def test_the_inspection_never_carries_a_files_content(fleet):
    """postgresql.conf may hold a password (primary_conninfo): the host sends digests, never the text."""
    conf = fleet / "conf/postgresql.conf"
    conf.write_text("primary_conninfo = 'host=db0 password=s3cret-in-conf'\nport = 5432\n")
    step(fleet, discover(fleet))
    inspection = discover(fleet, write=False)
    asked = run("cluster_files", {k: task(fleet)[k] for k in ("directories", "files", "lines")} | {"compare_only": True})
    done = step(fleet, inspection)
    assert "s3cret-in-conf" not in repr(inspection) + repr(asked) + repr(done)
    assert "s3cret-in-conf" in conf.read_text() and not done["changed"]


def test_the_diff_of_a_change_comes_from_the_host_that_makes_it(fleet):
    step(fleet, discover(fleet))
    (fleet / "conf/pg_hba.conf").write_text("local all all trust\n")
    args = dict(task(fleet), inspection=discover(fleet, write=False))
    done = run("cluster_tls", args, diff=True)
    assert done["changed"] and done["module_executions"] == 1
    assert {"before_header": f"{fleet}/conf/pg_hba.conf", "after_header": f"{fleet}/conf/pg_hba.conf",
            "before": "local all all trust\n", "after": "hostssl all all all cert\n"} in done["diff"]


def test_an_inspection_of_other_lines_is_not_trusted(fleet):
    step(fleet, discover(fleet))
    args = task(fleet)
    args["lines"] = [dict(args["lines"][0], line="include_dir = 'conf.d' # ours")]
    done = run("cluster_tls", dict(args, inspection=discover(fleet, write=False)))
    assert done["changed"] and done["module_executions"] == 1  # not decided here: the apply execution compares
    assert "include_dir = 'conf.d' # ours" in (fleet / "conf/postgresql.conf").read_text()


def test_the_inspection_never_carries_a_key(fleet):
    step(fleet, discover(fleet))
    inspection = discover(fleet, write=False)
    assert "PRIVATE KEY" not in repr(inspection)
    assert os.path.exists(fleet / "conf/tls/server.key")


def _chown_nobody(path):
    os.chown(path, 65534, 65534)


@pytest.mark.parametrize("drift", [
    lambda conf: os.chmod(conf / "pg_hba.conf", 0o600),
    lambda conf: _chown_nobody(conf / "pg_hba.conf"),
    lambda conf: _chown_nobody(conf / "tls"),
    lambda conf: os.chmod(conf / "tls", 0o700),
    lambda conf: (conf / "pg_hba.conf").write_text("local all all trust\n"),
    lambda conf: (conf / "pg_hba.conf").unlink(),
    lambda conf: (conf / "postgresql.conf").write_text("port = 5432\n"),
    lambda conf: (conf / "postgresql.conf").write_text("include_dir = 'other'\nport = 5432"),
], ids=["file-mode", "file-owner", "folder-owner", "folder-mode", "content", "missing", "line", "line-replaced"])
def test_the_controller_words_a_drift_as_the_host_does(fleet, drift):
    """The decision on the controller and the host's own comparison (cluster_files with compare_only) find the same
    changes, in the same words: what a run reports does not depend on which side looked."""
    args = task(fleet)
    for entry in args["files"] + args["directories"]:
        entry.update(owner="root", group="root")
    step(fleet, discover(fleet))
    drift(fleet / "conf")
    decided = compare(args, discover(fleet, write=False)["states"])
    host = run("cluster_files", {k: args[k] for k in ("directories", "files", "lines")} | {"compare_only": True})
    assert not host.get("failed"), host.get("msg")
    assert decided.complete and decided.changes and decided.changes == host["changes"]


# A service's own client certificate (PgBouncer's, for PostgreSQL): the same step, the same executions -------------
def bouncer_task(root, **extra):
    args = task(root)
    args["client_material"] = dict({"name": "pgbouncer", "dir": str(root / "conf/tls/client")}, **extra)
    return args


def test_a_client_certificate_rides_in_the_same_executions(fleet):
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    done = run("cluster_tls", bouncer_task(fleet))
    assert not done.get("failed"), done.get("msg")
    assert done["client_issued"] and done["module_executions"] == 2  # asked (both CSRs), then applied (both)
    client = fleet / "conf/tls/client"
    leaf = load_certificates((client / "postgresql.crt").read_bytes(), "postgresql.crt")
    assert leaf[0].subject.rfc4514_string() == "CN=pgbouncer" and len(leaf) == 2  # leaf, then the intermediate
    usage = leaf[0].extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert (client / "root.crt").read_bytes() == (fleet / "pki/root.crt").read_bytes()
    assert os.stat(client / "postgresql.key").st_mode & 0o777 == 0o600
    archived = list((fleet / "pki/issued/pgbouncer").iterdir())
    assert [p.name for p in archived] == [f"{leaf[0].serial_number:X}.crt".rjust(len(archived[0].name), "0")]
    before = tree(fleet / "conf")
    again = run("cluster_tls", bouncer_task(fleet))
    assert not again["changed"] and not again["client_issued"] and again["module_executions"] == 1
    assert tree(fleet / "conf") == before


def test_a_client_certificate_folder_is_a_folder_of_its_own(fleet):
    before = tree(fleet)
    done = run("cluster_tls", bouncer_task(fleet, dir=str(fleet / "conf/tls")))
    assert done["failed"] and done["msg"].startswith(f"client_material.dir: {fleet}/conf/tls is also directories[0]")
    assert tree(fleet) == before


def test_a_client_certificate_needs_the_collections_ca(fleet):
    args = bouncer_task(fleet)
    args.pop("ca_folder")
    args["external"] = {"csr_path": str(fleet / "ext/db1.csr"), "cert_path": str(fleet / "ext/db1.crt"),
                        "root_path": str(fleet / "ext/root.crt")}
    done = run("cluster_tls", args)
    assert done["failed"] and done["msg"].startswith("client_material: client_material needs material and the "
                                                     "collection's CA")


def test_the_snapshot_holds_every_file_the_task_writes(fleet):
    from types import SimpleNamespace

    from ansible_collections.pgtls.ssl.plugins.action.cluster_tls import snapshot_paths

    args = bouncer_task(fleet)
    args["snapshot_paths"] = [str(fleet / "conf/extra.conf"), str(fleet / "conf/pg_hba.conf")]
    server = SimpleNamespace(item={"key_path": "/t/server.key", "cert_path": "/t/server.crt", "root_path": "/t/root.crt"})
    client = SimpleNamespace(item={"key_path": "/t/c/postgresql.key", "cert_path": "/t/c/postgresql.crt",
                                   "root_path": "/t/c/root.crt"})
    assert snapshot_paths(args, [server, client]) == [
        "/t/server.key", "/t/server.crt", "/t/root.crt", "/t/c/postgresql.key", "/t/c/postgresql.crt",
        "/t/c/root.crt", str(fleet / "conf/pg_hba.conf"), str(fleet / "conf/postgresql.conf"),
        str(fleet / "conf/extra.conf")]


@pytest.mark.parametrize("allowed", [False, True])
def test_a_stopped_cluster_fails_its_task_unless_allowed(fleet, monkeypatch, allowed):
    """The server role's "nothing proves a stopped cluster" check, in the cluster step: the files are in place (here
    unchanged, so no execution), then the task fails naming the cluster - or warns with allow_stopped."""
    from ansible_collections.pgtls.ssl.plugins.plugin_utils import _action

    step(fleet, discover(fleet))
    warned = []
    monkeypatch.setattr(_action.display, "warning", warned.append)
    cluster = {"version": 15, "name": "main", "port": 5432, "config_dir": str(fleet / "conf"),
               "data_dir": str(fleet / "data"), "running": False}
    inspection = discover(fleet, write=False)
    inspection.pop("served", None)  # discovery probes no stopped cluster (pg_isready found it down)
    args = dict(task(fleet), inspection=inspection, allow_stopped=allowed,
                activate={"cluster": cluster, "hostnames": ["db1.example.com"],
                          "settings_file": str(fleet / "conf" / "postgresql.conf")})
    done = run("cluster_tls", args)
    assert not done.get("changed") and done["module_executions"] == 0, done
    if allowed:
        assert not done.get("failed"), done.get("msg")
        assert warned and warned[0].startswith("not running, so not proven: 15/main on "), warned
    else:
        assert done.get("failed") and not warned, done
        assert "PostgreSQL is not running on" in done["msg"] and ": 15/main (port 5432)." in done["msg"], done["msg"]
        assert "set pgtls_allow_stopped=true (allow_stopped)" in done["msg"]


@pytest.mark.parametrize("check_mode", [False, True])
def test_a_snapshot_left_by_a_stopped_run_activates_the_cluster_though_nothing_differs(fleet, monkeypatch, check_mode):
    """A run killed after writing (a CRL, a pg_hba.conf rule) and before its reload leaves its snapshot and files the
    server never loaded: with an activation, the next run validates, reloads and proves though nothing differs, then
    removes the snapshot; check mode says it would (a change), touching nothing. A stopped cluster here: the
    activation's checks that need no server run (the e2e fleet proves the reload on a running one)."""
    from ansible_collections.pgtls.ssl.plugins.plugin_utils import _action

    monkeypatch.setattr(_action.display, "warning", lambda *_: None)
    step(fleet, discover(fleet))
    snap = fleet / "conf/tls/.snap"
    snap.mkdir()
    (snap / "_etc_x").write_text("a copy")
    before = tree(fleet / "conf")
    cluster = {"version": 15, "name": "main", "port": 5432, "config_dir": str(fleet / "conf"),
               "data_dir": str(fleet / "data"), "running": False}
    inspection = discover(fleet, write=False)
    inspection.pop("served", None)
    args = dict(task(fleet), inspection=inspection, allow_stopped=True,
                activate={"cluster": cluster, "hostnames": ["db1.example.com"], "server_user": "root",
                          "settings_file": str(fleet / "conf" / "postgresql.conf")})
    done = run("cluster_tls", args, check_mode=check_mode)
    assert not done.get("failed"), done.get("msg")
    assert done["interrupted"] and not done["stale"] and done["changed"] and done["changes"] == [], done
    if check_mode:
        assert done["module_executions"] == 0 and "activation" not in done
        assert tree(fleet / "conf") == before
    else:
        assert done["module_executions"] == 1 and done["activation"]["steps"], done
        assert done["stale_snapshot_removed"] and not snap.exists(), repr(done)
        inspection = discover(fleet, write=False)
        inspection.pop("served", None)
        again = run("cluster_tls", dict(args, inspection=inspection))
        assert not again["changed"] and not again["interrupted"] and again["module_executions"] == 0, again
