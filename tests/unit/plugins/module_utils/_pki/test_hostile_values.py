"""Issue 19's classes that are about values rather than paths: CA material given as content that would replace a CA
folder's own, values from hosts that reach the audit's outputs, entries of the registry, numbers refused before
anything is made, lines set in order, and messages that name the setting and its file. (Paths: test_attack_matrix.)"""

from __future__ import annotations

import html.parser
import json
import os
import stat

import pytest
import yaml
from pkitools import Pki, key_pem, pem, tree
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.cafolder.ca_folder import ensure_folder
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.cafolder.intermediate_rotation import rotate
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.errors import PkiError
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.specs import AUDIT_REPORT, CA_FOLDER
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host import cluster_info as clusters
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host.cluster_files import cluster_files
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.reports import audit_report as audit
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.reports import report


def folder_params(path, **given) -> dict:
    params = {name: entry.get("default") for name, entry in CA_FOLDER.items()}
    params.update(path=str(path), root_common_name="Root", intermediate_common_name="CA", **given)
    return params


@pytest.fixture
def pki_dir(tmp_path):
    folder = tmp_path / "pki"
    ensure_folder(folder_params(folder), False)
    return folder


# Class 1: CA material as content never replaces a CA folder's own -------------------------------------------------
@pytest.mark.parametrize("case", ["other root key", "other intermediate", "damaged key", "garbage certificate",
                                  "key of the wrong certificate"])
def test_content_that_differs_from_the_folder_is_refused_and_nothing_written(pki_dir, case):
    other = Pki()
    key = (pki_dir / "root.key").read_text()
    given = {
        "other root key": {"root_key_content": key_pem(other.root_key).decode()},
        "other intermediate": {"intermediate_cert_content": pem(other.int).decode(),
                               "intermediate_key_content": key_pem(other.int_key).decode()},
        "damaged key": {"root_key_content": key[: len(key) // 2]},
        "garbage certificate": {"root_cert_content": "-----BEGIN CERTIFICATE-----\nnot base64\n"
                                                     "-----END CERTIFICATE-----\n"},
        "key of the wrong certificate": {"intermediate_key_content": (pki_dir / "root.key").read_text()},
    }[case]
    before = tree(pki_dir)
    with pytest.raises(PkiError) as err:
        ensure_folder(folder_params(pki_dir, **given), False)
    assert str(err.value).split(":", 1)[0] in given, str(err.value)
    assert "PRIVATE KEY-----" not in str(err.value)
    assert tree(pki_dir) == before


def test_the_same_material_in_other_bytes_changes_nothing(pki_dir):
    given = {"root_cert_content": (pki_dir / "root.crt").read_text().rstrip("\n"),
             "intermediate_key_content": (pki_dir / "intermediate.key").read_text() + "\n"}
    before = tree(pki_dir)
    done = ensure_folder(folder_params(pki_dir, **given), False)
    assert not done["changed"] and tree(pki_dir) == before


def test_a_folder_is_made_from_consistent_content(tmp_path, pki_dir):
    given = {"root_cert_content": (pki_dir / "root.crt").read_text(), "root_key_content": (pki_dir / "root.key")
             .read_text(), "intermediate_cert_content": (pki_dir / "intermediate.crt").read_text(),
             "intermediate_key_content": (pki_dir / "intermediate.key").read_text()}
    done = ensure_folder(folder_params(tmp_path / "copy", **given), False)
    assert done["changed"] and (tmp_path / "copy" / "root.crt").read_bytes() == (pki_dir / "root.crt").read_bytes()
    assert stat.S_IMODE(os.stat(tmp_path / "copy" / "root.key").st_mode) == 0o600
    assert not ensure_folder(folder_params(tmp_path / "copy", **given), False)["changed"]


# Class 11: numbers refused before anything is made ----------------------------------------------------------------
@pytest.mark.parametrize(("option", "value"), [("crl_next_update_days", 0), ("crl_renew_before_days", 30),
                                               ("crl_renew_before_days", -1), ("lock_timeout", -5)])
def test_bad_numbers_on_a_fresh_folder_make_nothing(tmp_path, option, value):
    with pytest.raises(PkiError, match=rf"^{option}: "):
        ensure_folder(folder_params(tmp_path / "pki", **{option: value}), False)
    assert not (tmp_path / "pki").exists()


def test_check_mode_on_a_fresh_folder_sees_the_whole_run(tmp_path):
    done = ensure_folder(folder_params(tmp_path / "pki"), True)
    assert done["changed"] and not (tmp_path / "pki").exists()
    assert any(c.startswith("intermediate.crl") for c in done["changes"]), done["changes"]


def test_rotation_refuses_a_negative_lock_timeout(pki_dir):
    with pytest.raises(PkiError, match="^lock_timeout: must not be negative"):
        rotate({"pki_dir": str(pki_dir), "step": "start", "lock_timeout": -1}, False)


# Class 10: what a CA folder holds is named when it is wrong, never a traceback -------------------------------------
@pytest.mark.parametrize(("entry", "expected"), [
    ({"serial_number": "0x10", "reason": "stolen"}, "is not a revocation reason"),
    ({"serial_number": "0x10", "revocation_date": "yesterday"}, "is not an ISO 8601 date"),
    ({"serial_number": "ten"}, "is not a serial number"),
])
def test_a_bad_registry_entry_is_named_with_its_file(pki_dir, entry, expected):
    (pki_dir / "revoked.yml").write_text(yaml.safe_dump([entry]))
    before = tree(pki_dir)
    with pytest.raises(PkiError) as err:
        ensure_folder(folder_params(pki_dir, crl_renew_before_days=29), False)
    assert f"{pki_dir}/revoked.yml entry 1" in str(err.value) and expected in str(err.value)
    assert tree(pki_dir) == before


def test_a_future_or_malformed_date_in_revoked_is_refused(pki_dir):
    for date, expected in (("31/12/2024", "is not an ISO 8601 date"), ("2999-01-01", "is in the future")):
        revoked = [{"serial_number": "0x10", "reason": "superseded", "revocation_date": date,
                    "certificate_path": None, "certificate_content": None}]
        with pytest.raises(PkiError, match=rf"revoked\[0\]\.revocation_date: .*{expected}"):
            ensure_folder(folder_params(pki_dir, revoked=revoked), False)


# Classes 7 and 10: the audit's values are typed where they enter and escaped where they leave ----------------------
def audit_params(tmp_path, servers, **given) -> dict:
    params = {name: entry.get("default") for name, entry in AUDIT_REPORT.items()}
    params.update(servers=servers, json_path=str(tmp_path / "a.json"), metrics_path=str(tmp_path / "a.prom"),
                  html_path=str(tmp_path / "a.html"), **given)
    return params


def server(**over) -> dict:
    entry = {"host": "db1", "cluster": "15/main", "port": 5432, "running": True,
             "result": {"findings": [{"check": "validity", "status": "ok", "message": "300 days left"}],
                        "certificate": {"subject": "CN=db1", "issuer": "CN=CA", "serial": "01",
                                        "not_after": "2030-01-01T00:00:00+00:00", "days_left": 300,
                                        "fingerprint_sha256": "AA"}, "chain": [], "crls": []}}
    entry.update(over)
    return entry


class Elements(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


HOSTILE = '<img src=x onerror="alert(1)">\n# TYPE pgtls_owned gauge\npgtls_owned 1'


def test_hostile_names_are_escaped_in_every_output(tmp_path):
    done = audit.audit_report(audit_params(tmp_path, [server(host=HOSTILE, cluster=HOSTILE)]), False)
    assert done["changed"]
    page = Elements()
    page.feed((tmp_path / "a.html").read_text())
    assert not [tag for tag, _attrs in page.tags if tag == "img"]
    assert not any(name.startswith("on") for _tag, attrs in page.tags for name in attrs)
    families = {f.name: f for f in text_string_to_metric_families((tmp_path / "a.prom").read_text())}
    assert "pgtls_owned" not in families  # no sample of the host's making
    labels = [s.labels for f in families.values() for s in f.samples if "host" in s.labels]
    assert labels and all(label["host"] == HOSTILE for label in labels)
    assert json.loads((tmp_path / "a.json").read_text())["servers"][0]["host"] == HOSTILE


@pytest.mark.parametrize(("entry", "where", "expected"), [
    (server(host=None), "servers[0].host", "is missing"),
    (server(port="abc"), "servers[0].port", "is not a port number"),
    (server(port=70000), "servers[0].port", "is not a port number"),
    (server(result={"certificate": {**server()["result"]["certificate"], "days_left": "5\npgtls_x 1"}}),
     "servers[0].result.certificate.days_left", "is not a whole number"),
    (server(result={"certificate": {**server()["result"]["certificate"], "not_after": "soon"}}),
     "servers[0].result.certificate.not_after", "is not an ISO 8601 date"),
    (server(result={"findings": [{"check": "x", "status": "<b>fail</b>", "message": ""}]}),
     "servers[0].result.findings[0].status", "is not ok, warn or fail"),
    (server(running="maybe"), "servers[0].running", "is not true or false"),
    (server(result=["not", "a", "result"]), "servers[0].result", "not a dictionary"),
])
def test_values_from_hosts_are_typed_where_they_enter(tmp_path, entry, where, expected):
    with pytest.raises(PkiError) as err:
        audit.audit_report(audit_params(tmp_path, [server(host="db0"), entry]), False)
    message = str(err.value).replace("servers[1]", "servers[0]")
    assert message.startswith(f"{where}: ") and expected in message, str(err.value)
    assert sorted(os.listdir(tmp_path)) == []


def test_the_archive_and_registry_are_read_safely(tmp_path, pki_dir):
    (pki_dir / "issued" / "a-file").parent.mkdir(exist_ok=True)
    (pki_dir / "issued" / "a-file").write_text("not a folder of certificates")
    (pki_dir / "issued" / "app").mkdir()
    (pki_dir / "issued" / "app" / "0A.crt").write_text("garbage")
    done = audit.audit_report(audit_params(tmp_path, [server()], pki_dir=str(pki_dir)), False)
    assert done["clients"]["expiring"] == []
    (pki_dir / "revoked.yml").write_text("- serial_number: [unclosed\n")
    with pytest.raises(PkiError, match=r"^path: .*revoked.yml is not valid YAML"):
        audit.audit_report(audit_params(tmp_path, [server()], pki_dir=str(pki_dir)), False)


def test_the_prometheus_output_parses_and_keeps_its_numbers(tmp_path):
    built = report.build([report.record(server(), where="servers[0]")], None, 14, report._parse("2026-12-01T00:00:00"))
    families = {f.name: f for f in text_string_to_metric_families(report.to_prometheus(built))}
    assert families["pgtls_certificate_days_left"].samples[0].value == 300


# Class 11: lines on one file are set in order, once, and a second run changes nothing ------------------------------
def test_two_lines_on_one_file_never_undo_each_other(tmp_path):
    conf = tmp_path / "postgresql.conf"
    conf.write_text("port = 5432\n")
    params = {"directories": [], "files": [], "snapshot_dir": None, "snapshot_paths": [], "snapshot_group": None,
              "lines": [{"path": str(conf), "regexp": "^ssl", "line": "ssl = on"},
                        {"path": str(conf), "regexp": "^ssl", "line": "ssl = off"}]}
    first = cluster_files(params, False)
    assert first["changed"] and conf.read_text() == "port = 5432\nssl = off\n"
    for _run in range(2):
        again = cluster_files(params, False)
        assert not again["changed"] and conf.read_text() == "port = 5432\nssl = off\n"


# Class 12: a bad port names the setting and its file -----------------------------------------------------------------
def test_a_bad_port_names_the_setting_and_the_file(tmp_path):
    conf = tmp_path / "15" / "main"
    conf.mkdir(parents=True)
    (conf / "postgresql.conf").write_text("port = 'abc'\n")
    with pytest.raises(PkiError) as err:
        clusters.debian_clusters(str(tmp_path), proc=str(tmp_path / "proc"))
    assert str(err.value).startswith(f"port in {conf}/postgresql.conf: ") and "'abc' is not a number" in str(err.value)
