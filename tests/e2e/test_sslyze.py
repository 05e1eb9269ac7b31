"""The role's TLS defaults against Mozilla's server-side TLS profiles, as sslyze checks them (an oracle that is not
our code): `sslyze --starttls postgres --mozilla_config intermediate --certinfo_ca_file <root>` against a real
PostgreSQL 15 the role configured; `pgtls_ssl_profile: modern` against the modern profile.

Documented exceptions (findings the test accepts): none. sslyze comes from requirements-sslyze.txt (pinned) in
its own venv, PGTLS_SSLYZE (the Makefile sets .venv-sslyze/bin/sslyze)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
from conftest import plain_cluster, role_vars, run_playbook

SSLYZE = os.environ.get("PGTLS_SSLYZE") or shutil.which("sslyze") or ""
# Findings accepted on purpose, as "<check>" names from sslyze's report; keep empty unless documented here.
ACCEPTED: set[str] = set()


@pytest.fixture(scope="module")
def configured(workdir):
    if not SSLYZE or not os.path.exists(SSLYZE):
        pytest.fail("sslyze is missing: make e2e installs it in .venv-sslyze (requirements-sslyze.txt)")
    cluster = plain_cluster(workdir / "sslyze")
    extra = role_vars(cluster, "sslyze", workdir / "sslyze" / "pki")
    yield cluster, dict(extra, pgtls_key_layout="owner")
    cluster.stop()


def sslyze(cluster, profile: str) -> tuple[int, str, list[str]]:
    root = cluster.data / "tls" / "root.crt"
    done = subprocess.run([SSLYZE, "--starttls", "postgres", "--mozilla_config", profile, "--certinfo_ca_file",
                           str(root), f"localhost:{cluster.port}{{127.0.0.1}}"],
                          capture_output=True, text=True, check=False, timeout=300)
    assert "COMPLIANCE AGAINST" in done.stdout, done.stdout[-3000:] + done.stderr[-2000:]
    report = done.stdout.split("COMPLIANCE AGAINST")[-1]
    findings = [line.strip() for line in report.splitlines() if re.match(r"\s+\* \w+:", line)]
    return done.returncode, done.stdout + done.stderr, findings


def unaccepted(findings: list[str]) -> list[str]:
    return [f for f in findings if f.lstrip("* ").split(":", 1)[0].strip() not in ACCEPTED]


def test_defaults_pass_mozilla_intermediate(configured):
    cluster, extra = configured
    run_playbook("role_local.yml", extra)
    rc, out, findings = sslyze(cluster, "intermediate")
    assert unaccepted(findings) == [], findings
    assert rc == 0 and "OK - Compliant" in out, out[-3000:]


def test_modern_profile_passes_mozilla_modern(configured, tmp_path):
    """modern: TLS 1.3 only, and (Mozilla's rule, not a setting of PostgreSQL) certificates of at most 90 days, so
    the certificate comes from a CA folder of its own with pgtls_server_valid_days: 90."""
    cluster, extra = configured
    # A CA folder of its own is a new root for this server: the role refuses that unless told (issue 8).
    run_playbook("role_local.yml", dict(extra, pgtls_ssl_profile="modern", pgtls_server_valid_days=90,
                                        pgtls_pki_dir=str(tmp_path / "pki-modern"), pgtls_accept_new_root=True))
    assert cluster.admin("show ssl_min_protocol_version").stdout.strip() == "TLSv1.3"
    rc, out, findings = sslyze(cluster, "modern")
    assert unaccepted(findings) == [], findings
    assert rc == 0 and "OK - Compliant" in out, out[-3000:]
    run_playbook("role_local.yml", dict(extra, pgtls_accept_new_root=True))  # back to the defaults and the first CA


def test_old_default_is_not_compliant(configured):
    """The oracle bites: the previous default (HIGH:...) offers CBC, CCM, ARIA and CAMELLIA suites."""
    cluster, extra = configured
    run_playbook("role_local.yml", dict(extra, pgtls_ssl_ciphers="HIGH:!aNULL:!eNULL:!MD5:!3DES:!RC4"))
    rc, out, findings = sslyze(cluster, "intermediate")
    assert rc != 0 and findings, out[-3000:]
    assert any(f.startswith("* ciphers:") for f in findings), findings
    run_playbook("role_local.yml", extra)
