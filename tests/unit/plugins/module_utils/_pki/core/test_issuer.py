"""Loading the signing CA: every way it can be wrong fails naming the option."""

from __future__ import annotations

import pytest
from pkitools import Pki, days_ago, key_pem, pem, write

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.errors import PkiError
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.issue import load_issuer
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.keys import generate_key


def _params(tmp_path, pki, case):
    params = {"issuer_cert_path": write(tmp_path / "int.crt", pem(pki.int)),
              "issuer_key_path": write(tmp_path / "int.key", key_pem(pki.int_key, "pw")),
              "issuer_key_passphrase": "pw",
              "issuer_chain_path": write(tmp_path / "root.crt", pem(pki.root))}
    if case == "leaf_as_issuer":
        key, leaf = pki.leaf()
        params["issuer_cert_path"] = write(tmp_path / "leaf.crt", pem(leaf))
    elif case == "expired_issuer":
        old = Pki(int_days=10)
        from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.issue import issue_certificate
        from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.names import build_name
        from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.profiles import INTERMEDIATE_CA
        expired = issue_certificate(subject=build_name("Old Int"), public_key=old.int_key.public_key(),
                                    profile=INTERMEDIATE_CA, valid_days=10, issuer=old.root_issuer, at=days_ago(30))
        params["issuer_cert_path"] = write(tmp_path / "old.crt", pem(expired))
    elif case == "chain_not_parent":
        params["issuer_chain_path"] = write(tmp_path / "other.crt", pem(Pki().root))
    elif case == "wrong_passphrase":
        params["issuer_key_passphrase"] = "nope"
    elif case == "key_of_another_ca":
        params["issuer_key_path"] = write(tmp_path / "other.key", key_pem(generate_key("ec-p256"), "pw"))
    elif case == "missing_cert_file":
        params["issuer_cert_path"] = str(tmp_path / "absent.crt")
    elif case == "malformed_cert":
        broken = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        params["issuer_cert_path"] = write(tmp_path / "bad.crt", broken)
    elif case == "not_pem":
        params["issuer_cert_path"] = write(tmp_path / "bad.crt", b"hello")
    return params


ERRORS = [
    ("leaf_as_issuer", "issuer_cert_path", "is not a CA certificate"),
    ("expired_issuer", "issuer_cert_path", "expired on"),
    ("chain_not_parent", "issuer_chain_path", "did not issue"),
    ("wrong_passphrase", "issuer_key_path", "wrong passphrase"),
    ("key_of_another_ca", "issuer_key_path", "does not match the CA certificate"),
    ("missing_cert_file", "issuer_cert_path", "does not exist"),
    ("malformed_cert", "issuer_cert_path", "is malformed"),
    ("not_pem", "issuer_cert_path", "contains no PEM certificate"),
]


@pytest.mark.parametrize("case,option,message", ERRORS)
def test_issuer_errors_name_option_and_problem(tmp_path, case, option, message):
    pki = Pki()
    with pytest.raises(PkiError) as err:
        issuer = load_issuer(_params(tmp_path, pki, case))
        issuer.key()  # the key is loaded lazily, when signing needs it
    assert str(err.value).startswith(option), str(err.value)
    assert message in str(err.value)


def test_key_is_not_read_until_needed(tmp_path):
    pki = Pki()
    params = _params(tmp_path, pki, "good")
    params["issuer_key_path"] = str(tmp_path / "kept-offline.key")
    issuer = load_issuer(params)
    assert [c.subject for c in issuer.intermediates] == [pki.int.subject]
    assert issuer.root == pki.root
    with pytest.raises(PkiError, match="does not exist"):
        issuer.key()
