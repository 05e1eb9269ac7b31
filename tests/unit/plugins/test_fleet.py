"""Fleet-level checks of the server role: a foreign trust anchor is refused naming both roots (fingerprints from
openssl, the oracle), and pg_isready's exit codes tell which clusters run."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest

from ansible_collections.pgtls.ssl.plugins.plugin_utils._fleet import clusters_with_state, trust_problems

PKI = "/srv/pki"


def make_root(tmp: Path, name: str) -> tuple[str, str]:
    """A root made by openssl, and its SHA-256 fingerprint as openssl prints it."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "30", "-subj", f"/CN={name}", "-keyout", str(tmp / f"{name}.key"),
                    "-out", str(tmp / f"{name}.crt")], capture_output=True, check=True)
    out = subprocess.run(["openssl", "x509", "-in", str(tmp / f"{name}.crt"), "-noout", "-fingerprint", "-sha256"],
                         capture_output=True, text=True, check=True).stdout
    return (tmp / f"{name}.crt").read_text(), out.strip().split("=", 1)[1]


def slurped(*contents: str | None) -> dict:
    """What the role registers: one slurp result per cluster (no content when root.crt is missing)."""
    results = []
    for index, content in enumerate(contents):
        item = {"__pgtls_cluster": {"version": 15, "name": f"c{index}"}, "source": f"/etc/c{index}/tls/root.crt"}
        if content is not None:
            item["content"] = base64.b64encode(content.encode()).decode()
        results.append(item)
    return {"results": results}


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("roots")
    return {"ours": make_root(tmp, "Our Root"), "theirs": make_root(tmp, "Their Root")}


def test_same_root_or_nothing_installed_passes(roots):
    ours = roots["ours"][0]
    assert trust_problems([slurped(ours), slurped(None)], ["db1", "db2"], ours, PKI) == []
    assert trust_problems([slurped(None)], ["db1"], "", PKI) == []  # day 0: no CA, nothing trusted yet


@pytest.mark.parametrize("installed", ["theirs", "both", "truncated"])
def test_another_root_is_refused_naming_both(roots, installed):
    (ours, our_fp), (theirs, their_fp) = roots["ours"], roots["theirs"]
    content = {"theirs": theirs, "both": ours + theirs, "truncated": theirs[:200]}[installed]
    problems = trust_problems([slurped(ours), slurped(content)], ["db1", "db2"], ours, PKI)
    if installed == "truncated":  # no certificate in it: nothing trusted, the role repairs the file
        assert problems == []
        return
    assert len(problems) == 1
    msg = problems[0]
    assert f"the CA folder {PKI} holds the root CN=Our Root (SHA-256 {our_fp})" in msg
    trusted = f"CN=Their Root (SHA-256 {their_fp})"
    if installed == "both":  # a bundle is not the CA folder's root either: each of its roots is named
        trusted = f"CN=Our Root (SHA-256 {our_fp}) + {trusted}"
    assert f"db2 15/c0 (/etc/c0/tls/root.crt) trusts {trusted}" in msg
    assert "db1" not in msg and "pgtls_accept_new_root=true" in msg and "Nothing was changed." in msg
    assert trust_problems([slurped(ours), slurped(content)], ["db1", "db2"], ours, PKI, accept_new_root=True) == []


def test_empty_ca_folder_with_a_trusting_fleet_is_refused(roots):
    theirs, their_fp = roots["theirs"]
    hosts = [f"db{i}" for i in range(8)]
    problems = trust_problems([slurped(theirs)] * 8, hosts, "", PKI)
    assert f"the CA folder {PKI} holds no root CA (root.crt), so a new root would be made" in problems[0]
    assert "db0 15/c0 (/etc/c0/tls/root.crt), db1" in problems[0] and " and 3 more trust " in problems[0]
    assert f"CN=Their Root (SHA-256 {their_fp})" in problems[0] and "db7" not in problems[0]


@pytest.mark.parametrize("code, discovered, running", [
    ("0", False, True), ("1", True, False), ("2", True, False), ("127", False, False), ("127", True, True)])
def test_clusters_with_state(code, discovered, running):
    [cluster] = clusters_with_state([{"name": "main", "running": discovered}], [code])
    assert cluster["running"] is running and cluster["ready_code"] == int(code)


def test_clusters_with_state_needs_one_answer_per_cluster():
    with pytest.raises(ValueError, match="answered 1 times for 2 clusters"):
        clusters_with_state([{"name": "a"}, {"name": "b"}], ["0"])


def test_clusters_from_cluster_info_are_compared_like_slurp_results(roots):
    """The role passes pgtls.ssl.cluster_info's clusters (trusted_root read with trust_file) to the filter."""
    ours, (theirs, their_fp) = roots["ours"][0], roots["theirs"]
    clusters = [{"version": 15, "name": "main", "trusted_root": ours},
                {"version": 16, "name": "second", "trusted_root": theirs},
                {"version": 17, "name": "new", "trusted_root": None}]
    problems = trust_problems([clusters], ["db1"], ours, PKI)
    assert len(problems) == 1 and "db1 16/second" in problems[0] and their_fp in problems[0]
    assert "15/main" not in problems[0] and "17/new" not in problems[0]
    assert trust_problems([clusters[:1] + clusters[2:]], ["db1"], ours, PKI) == []
