"""Streaming replication as the server role decides it on the controller (plugin_utils/_replication.py through
plugins/filter/replication.py): membership, what each standby follows, the refusals before anything changes, the
pg_hba.conf rules and primary_conninfo's quoting. Expected values written out by hand; tests/e2e/test_replication.py
streams between two real clusters."""

from __future__ import annotations

import pytest

from ansible_collections.pgtls.ssl.plugins.filter.replication import FilterModule

F = FilterModule().filters()
CLUSTER = {"version": 15, "name": "main", "port": 5432}


def hostvars(**extra):
    """db1 a primary, db2 its standby, app unrelated; each with what discovery found."""
    found = {
        "db1": {"ansible_host": "10.0.0.1", "__pgtls_host_names": {"fqdn": "db1.example.com", "hostname": "db1"},
                "__pgtls_clusters": [dict(CLUSTER, port=5433)]},
        "db2": {"ansible_host": "10.0.0.2", "pgtls_primary_host": "db1", "__pgtls_clusters": [CLUSTER]},
        "app": {},
    }
    for host, values in extra.items():
        found.setdefault(host, {}).update(values)
    return found


def part(host, found, user="replicator", address=""):
    own = found[host]
    standbys = F["standby_map"](list(found), found).get(host, [])
    return F["replication"](host, own.get("pgtls_primary_host", ""), standbys, own.get("__pgtls_clusters"), found,
                            user, address)


def test_a_primary_and_its_standby_are_members_the_standby_follows_the_same_cluster():
    found = hostvars()
    assert F["standby_map"](list(found), found) == {"db1": ["db2"]}
    primary = part("db1", found)
    assert (primary["member"], primary["standbys"], primary["standby"], primary["problems"]) == (True, ["db2"], {}, [])
    standby = part("db2", found)
    assert standby["member"] and standby["problems"] == []
    assert standby["standby"] == {"15/main": {"host": "10.0.0.1", "port": 5433}}
    assert part("app", found) == {"member": False, "standbys": [], "standby": {}, "primary": "", "problems": []}


def test_the_standby_map_reads_each_host_once_and_keeps_the_inventory_order():
    found = {"db1": {}, "db3": {"pgtls_primary_host": "db1"}, "db2": {"pgtls_primary_host": "db1"},
             "db4": {"pgtls_primary_host": "db3"}, "db5": {"pgtls_primary_host": "db5"},
             "db6": {"pgtls_primary_host": ""}, "db7": {"pgtls_primary_host": None}, "app": {}}
    read = []

    class Counting(dict):
        def get(self, key, default=None):
            read.append(key)
            return super().get(key, default)

    # A chain (db4 -> db3 -> db1) is two entries; naming itself, nothing or None makes nobody a standby.
    assert F["standby_map"](list(found), Counting(found)) == {"db1": ["db3", "db2"], "db3": ["db4"]}
    assert sorted(read) == sorted(found)  # one lookup per host, not one per pair of hosts
    assert F["standby_map"]([], {}) == {} and F["standby_map"](None, {}) == {}


def test_the_address_is_any_name_of_the_primarys_certificate():
    found = hostvars()
    for address in ("db1", "db1.example.com", "DB1.example.com.", "10.0.0.1"):
        assert part("db2", found, address=address)["standby"]["15/main"]["host"] == address
        assert part("db2", found, address=address)["problems"] == []
    refused = part("db2", found, address="db-primary.example.com")
    assert refused["problems"] == [
        "db2: pgtls_primary_address: db-primary.example.com is not a name of db1's certificate (db1, db1.example.com, "
        "10.0.0.1), so verify-full would refuse it; use one of them, or add it to pgtls_server_extra_sans on db1. "
        "Nothing was changed."]
    found["db1"]["pgtls_server_extra_sans"] = ["db-primary.example.com"]
    assert part("db2", found, address="db-primary.example.com")["problems"] == []


@pytest.mark.parametrize(("changes", "host", "message"), [
    ({"db2": {"pgtls_primary_host": "db9"}}, "db2", "db2: pgtls_primary_host: 'db9' is not a host of the inventory"),
    ({"db1": {"pgtls_primary_host": "db2"}}, "db2",
     "db2: pgtls_primary_host: the standbys form a cycle (db2 -> db1 -> db2): one of them must be a primary"),
    ({"db2": {"pgtls_primary_host": "db2"}}, "db2",
     "db2: pgtls_primary_host: the standbys form a cycle (db2 -> db2): one of them must be a primary"),
    ({"db1": {"__pgtls_clusters": None}}, "db2",
     "db2: pgtls_primary_host: db1's clusters are unknown (it is not in this play): run the role on it too"),
    ({"db1": {"__pgtls_clusters": [{"version": 16, "name": "main", "port": 5432}]}}, "db2",
     "db2: pgtls_primary_host: db1 has no cluster 15/main to follow (it has 16/main)"),
    ({"db1": {"__pgtls_clusters": [{"version": 12, "name": "main", "port": 5432}]},
      "db2": {"__pgtls_clusters": [{"version": 12, "name": "main", "port": 5432}]}}, "db2",
     "db2: pgtls_primary_host: 12/main is PostgreSQL 12: primary_conninfo takes a restart before PostgreSQL 13, "
     "which the role does not do for it"),
])
def test_refusals_name_the_host_and_the_variable(changes, host, message):
    found = hostvars()
    for name, values in changes.items():
        found[name].update(values)
        if values.get("__pgtls_clusters", 0) is None:
            del found[name]["__pgtls_clusters"]
    assert part(host, found)["problems"] == [f"{message}. Nothing was changed."]


@pytest.mark.parametrize("user", ["", "repl user", "1repl", "a" * 64])
def test_a_replication_role_pg_hba_cannot_take_is_refused_on_every_member(user):
    found = hostvars()
    for host in ("db1", "db2"):
        (problem,) = part(host, found, user=user)["problems"]
        assert problem.startswith(f"{host}: pgtls_replication_user: ") and problem.endswith("Nothing was changed.")
    assert part("app", found, user=user)["problems"] == []  # not a member: the role is not used


def test_the_members_rules_certificate_only_then_reject():
    assert F["replication_hba"]("replicator", ["10.0.0.0/24"]) == [
        {"type": "hostssl", "database": "replication", "user": "replicator", "address": "10.0.0.0/24", "method": "cert"},
        {"type": "hostssl", "database": "postgres", "user": "replicator", "address": "10.0.0.0/24", "method": "cert"},
        {"type": "host", "database": "replication", "user": "replicator", "address": "all", "method": "reject"},
        {"type": "host", "database": "all", "user": "replicator", "address": "all", "method": "reject"},
        {"type": "local", "database": "replication", "user": "replicator", "method": "reject"},
        {"type": "local", "database": "all", "user": "replicator", "method": "reject"},
    ]


def test_conninfo_quotes_as_libpq_parses():
    assert F["conninfo"]({"host": "db1", "port": 5432, "application_name": "", "sslcrl": None,
                          "sslcert": "/etc/pg tls/r.crt", "options": "it's", "sslkey": "a\\b"}) == (
        "host=db1 port=5432 sslcert='/etc/pg tls/r.crt' options='it\\'s' sslkey='a\\\\b'")


def test_server_names_in_the_roles_order():
    assert F["server_names"]("db1", {"fqdn": "db1.example.com", "hostname": "db1"}, "10.0.0.1", ["db1", "alias"]) == [
        "db1", "db1.example.com", "10.0.0.1", "alias"]
    assert F["server_names"]("db1", {}, "", []) == ["db1"]


def test_a_standby_keeps_its_primaries_shared_names():
    """db3 follows db2 (a cascade) which follows db1: db3 keeps the names clients use for both, in order, once."""
    found = hostvars(db1={"pgtls_server_extra_sans": ["db.example.com", "10.0.0.100"]},
                     db2={"pgtls_server_extra_sans": ["db.example.com", "ro.example.com"]},
                     db3={"pgtls_primary_host": "db2", "pgtls_server_extra_sans": ["db3.example.com"]})
    assert F["shared_names"]("db3", found) == ["db.example.com", "ro.example.com", "10.0.0.100"]
    assert F["shared_names"]("db2", found) == ["db.example.com", "10.0.0.100"]
    assert F["shared_names"]("db1", found) == [] and F["shared_names"]("app", found) == []


@pytest.mark.parametrize(("primaries", "expected"), [
    ({"db1": {"pgtls_primary_host": "db2"}}, ["db.example.com"]),  # db2 -> db1 -> db2: db1's names, then the end
    ({"db2": {"pgtls_primary_host": "nowhere"}}, []),
])
def test_shared_names_end_at_a_cycle_or_an_unknown_primary(primaries, expected):
    found = hostvars(**primaries)
    found["db1"]["pgtls_server_extra_sans"] = ["db.example.com"]
    assert F["shared_names"]("db2", found) == expected
