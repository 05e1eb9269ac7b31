"""Filter pgtls.ssl.ca_folder_layout: the paths it gives are where the modules put each thing (pgtls.ssl.ca_folder and
revocation_registry, run through their core on a real folder; the bundles' folder: test_ca_folder_option.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.pgtls.ssl.plugins.filter.ca_folder_layout import FilterModule
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.cafolder.ca_folder import ensure_folder
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.cafolder.revocation_registry import ensure_entries

LAYOUT = FilterModule().filters()["ca_folder_layout"]


def test_the_paths_are_where_the_modules_write(tmp_path):
    pki = tmp_path / "pki"
    ensure_folder({"path": str(pki), "key_type": "ec-p256", "root_common_name": "R", "intermediate_common_name": "I",
                   "root_key_passphrase": None, "root_cert_content": None, "root_key_content": None,
                   "intermediate_cert_content": None, "intermediate_key_content": None, "crl": True, "revoked": [],
                   "crl_next_update_days": 30, "crl_renew_before_days": 7, "lock_timeout": 10}, False)
    ensure_entries({"path": None, "pki_dir": str(pki), "names": [], "serials": ["0x1F"], "reason": "superseded",
                    "revocation_date": None, "lock_timeout": 10, "add": [], "allow_unknown_serials": True}, False)
    paths = LAYOUT(str(pki))
    made = {"root_cert": "-----BEGIN CERTIFICATE-----", "intermediate_cert": "-----BEGIN CERTIFICATE-----",
            "root_crl": "-----BEGIN X509 CRL-----", "intermediate_crl": "-----BEGIN X509 CRL-----",
            "crl_bundle": "-----BEGIN X509 CRL-----", "registry": "serial_number: '0x1F'"}
    for name, text in made.items():
        assert text in Path(paths[name]).read_text(), name
    assert paths["crl_bundle"] == f"{pki}/crl.pem" and paths["registry"] == f"{pki}/revoked.yml"
    assert {paths[n] for n in ("archive", "clients", "previous", "retired")} == {
        f"{pki}/issued", f"{pki}/clients", f"{pki}/previous", f"{pki}/retired"}
    # The keys are the modules' alone: not offered.
    assert not any(path.endswith(".key") for path in paths.values())


def test_a_path_that_does_not_exist_is_laid_out_too():
    assert LAYOUT("/nowhere/pki")["clients"] == "/nowhere/pki/clients"


@pytest.mark.parametrize("given", ["", "  ", None, ["/srv/pki"]])
def test_no_path_is_refused(given):
    with pytest.raises(AnsibleFilterError, match="^ca_folder_layout: the input is a CA folder's path, got "):
        LAYOUT(given)
