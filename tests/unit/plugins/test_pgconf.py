"""pg_hba rules and cipher strings: what each PostgreSQL version refuses, found before anything is written."""

from __future__ import annotations

import pytest

from ansible_collections.pgtls.ssl.plugins.plugin_utils._pgconf import cipher_problems, hba_problems, hba_rules

SSL = {"type": "hostssl", "database": "all", "user": "all", "address": "10.0.0.0/8"}

HBA = [
    # (rule, version, expected message part or None)
    (dict(SSL, method="cert"), 15, None),
    (dict(SSL, method="scram-sha-256", options={"clientcert": "verify-full"}), 15, None),
    (dict(SSL, method="scram-sha-256", options={"clientcert": "1"}), 15, "clientcert=1 was removed in PostgreSQL 14"),
    (dict(SSL, method="scram-sha-256", options={"clientcert": "1"}), 13, None),
    (dict(SSL, method="scram-sha-256", options="clientcert=verify-full"), 11, "needs PostgreSQL 12"),
    (dict(SSL, type="host", method="scram-sha-256", options={"clientcert": "verify-ca"}), 15,
     "only allowed on hostssl lines"),
    (dict(SSL, method="cert", options={"clientcert": "verify-ca"}), 15, "cannot be used with method cert"),
    (dict(SSL, type="hostnossl", method="cert"), 15, "method cert needs a hostssl line"),
    (dict(SSL, method="cert", options={"clientname": "DN"}), 13, "clientname needs PostgreSQL 14"),
    (dict(SSL, method="cert", options={"clientname": "DN"}), 14, None),
    ({"type": "include", "path": "extra.conf"}, 15, "needs PostgreSQL 16"),
    ({"type": "include_dir", "path": "hba.d"}, 16, None),
    (dict(SSL, type="hots", method="cert"), 15, "type 'hots' is not one of"),
    ({"type": "local", "database": "all", "user": "all", "method": "peer", "address": "::1/128"}, 15,
     "a local line takes no address"),
    (dict(SSL, address=None, method="cert"), 15, "needs an address"),
    (dict(SSL, method="cert", options={"map": "certs"}), 15, "map=certs is not defined"),
]


@pytest.mark.parametrize("rule,version,expected", HBA)
def test_hba_problems(rule, version, expected):
    problems = hba_problems([rule], version)
    if expected is None:
        assert problems == []
    else:
        assert len(problems) == 1 and expected in problems[0] and problems[0].startswith("pgtls_hba_rules[0]: ")


def test_ssl_only_policy_turns_host_into_hostssl_and_rejects_the_rest():
    rules = hba_rules([dict(SSL, type="host", method="scram-sha-256"),
                       {"type": "local", "database": "all", "user": "all", "method": "peer"}], ssl_only=True)
    assert [r["type"] for r in rules] == ["hostssl", "local", "hostnossl", "hostnossl"]
    assert [r["address"] for r in rules[2:]] == ["0.0.0.0/0", "::/0"]
    assert all(r["method"] == "reject" for r in rules[2:])


CIPHERS = [
    ("HIGH:!aNULL:!eNULL:!MD5:!3DES", []),
    ("HIGH:MEDIUM:+3DES:!aNULL", []),
    ("HIGH:NULL", ["'NULL' enables ciphers without encryption"]),
    ("eNULL", ["'eNULL' enables ciphers without encryption"]),
    ("HIGH:EXPORT", ["export-grade"]),
    ("ALL:COMPLEMENTOFALL", ["includes eNULL"]),
    ("HIGH:-NULL:!EXPORT", []),
]


@pytest.mark.parametrize("ciphers,expected", CIPHERS)
def test_cipher_problems(ciphers, expected):
    problems = cipher_problems(ciphers)
    assert len(problems) == len(expected), problems
    for part, problem in zip(expected, problems):
        assert part in problem and problem.startswith("pgtls_ssl_ciphers: ")
