"""No secret in -vvv output; module executions on the host counted from outside (a logging interpreter)."""

from __future__ import annotations

import os
import re
import stat

from conftest import TARGET_PYTHON, run_playbook

PASS = "e2e-Root-Pa55phrase"


def _material(base):
    pki, srv = base / "pki", base / "srv"
    for folder in (pki, srv, pki / "clients"):
        folder.mkdir(parents=True, exist_ok=True)
    return {"pki": str(pki), "srv": str(srv), "sans": ["localhost"], "revoked": []}


def _key_bodies(*paths):
    lines = set()
    for path in paths:
        text = open(path).read()
        lines |= {line for line in text.splitlines() if line and "-----" not in line}
    return lines


def test_vvv_output_holds_no_passphrase_and_no_key_material(tmp_path):
    variables = _material(tmp_path)
    first = run_playbook("material.yml", variables, "-vvv")
    second = run_playbook("material.yml", variables, "-vvv")
    pki, srv = tmp_path / "pki", tmp_path / "srv"
    bodies = _key_bodies(pki / "root.key", pki / "int.key", srv / "server.key",
                         pki / "clients/alice/postgresql.key")
    for run in (first, second):
        output = run.stdout + run.stderr
        assert "TASK [Client certificates" in output  # the run really printed its tasks
        assert PASS not in output
        assert "PRIVATE KEY" not in output
        leaked = [line for line in bodies if line in output]
        assert leaked == [], f"{len(leaked)} lines of key material in -vvv output"


def test_server_cert_costs_two_executions_then_one(tmp_path):
    log = tmp_path / "executions.log"
    wrapper = tmp_path / "python-logging"
    wrapper.write_text(f"#!/bin/sh\necho \"$$ $*\" >> {log}\nexec {TARGET_PYTHON} \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    variables = _material(tmp_path)
    run_playbook("material.yml", variables)  # CA, CRLs and a first server certificate

    def executions(**extra):
        log.write_text("")
        done = run_playbook("server_only.yml", dict(variables, **extra), "-v",
                            ANSIBLE_PYTHON_INTERPRETER=str(wrapper))
        reported = int(re.findall(r'"module_executions": (\d+)', done.stdout)[-1])
        return len(log.read_text().splitlines()), reported

    unchanged = executions()
    # A re-issue keeping the key: prepare, install. With a new key (key_rotation=on_renewal, the default): prepare,
    # the new key and its CSR, install.
    kept = executions(sans=["localhost", "db.example.test"], key_rotation="never")
    rekeyed = executions(sans=["localhost", "db2.example.test"])
    os.unlink(tmp_path / "srv" / "server.key")
    os.unlink(tmp_path / "srv" / "server.crt")
    fresh = executions()
    assert unchanged == (1, 1)
    assert kept == (2, 2)
    assert rekeyed == (3, 3)
    assert fresh == (2, 2)
