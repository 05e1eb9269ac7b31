"""A CRL file never goes back (crls.never_older, and the cluster step's files through it): two runs at once on one
host each read the CA's CRL before installing it; the one that read first must not put back a CRL without the
other's revocation."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from pkitools import Pki

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core import compat
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.crls import Revocation, build_crl, never_older
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host.cluster_files import cluster_files

DAY = dt.timedelta(days=1)


@pytest.fixture(scope="module")
def pki():
    return Pki()


def crl(issuer, serials, number, at=None, days=30) -> bytes:
    return build_crl(issuer, [Revocation(s) for s in serials], None, days * DAY, at=at,
                     number=number).public_bytes(Encoding.PEM)


def test_an_older_crl_of_the_same_ca_does_not_replace_a_newer_one(pki):
    now = compat.now()
    root = crl(pki.root_issuer, [], 4, now)
    newer = crl(pki.issuer, [11, 12], 8, now)
    older = crl(pki.issuer, [11], 7, now - DAY)
    out, kept = never_older(root + newer, root + older)
    assert out == root + newer
    assert len(kept) == 1 and "CRL number 8 installed, 7 given" in kept[0]


def test_a_newer_crl_replaces_an_older_one(pki):
    now = compat.now()
    given = crl(pki.issuer, [11, 12], 8, now)
    assert never_older(crl(pki.issuer, [11], 7, now - DAY), given) == (given, [])


def test_the_same_number_is_written_as_given(pki):
    now = compat.now()
    given = crl(pki.issuer, [11], 7, now)
    assert never_older(crl(pki.issuer, [11], 7, now - DAY), given) == (given, [])


def test_a_ca_made_again_under_the_same_name_replaces_the_old_ones_crl():
    before, again = Pki(), Pki()  # the same names, other keys: another key identifier
    given = crl(again.issuer, [], 1)
    assert never_older(crl(before.issuer, [5], 9), given) == (given, [])


def test_an_installed_crl_that_expires_sooner_is_replaced(pki):
    """A CA folder restored from a backup signs lower numbers again: its CRL, lasting longer, is installed (the
    installed one would expire and PostgreSQL would refuse every client certificate)."""
    now = compat.now()
    given = crl(pki.issuer, [11], 3, now, days=30)
    assert never_older(crl(pki.issuer, [11], 9, now - 10 * DAY, days=30), given) == (given, [])


@pytest.mark.parametrize("installed", [b"", b"not a crl\n", b"-----BEGIN X509 CRL-----\ngarbage\n-----END X509 CRL-----\n"])
def test_anything_else_installed_is_replaced_by_what_is_given(pki, installed):
    given = crl(pki.issuer, [11], 3)
    assert never_older(installed, given) == (given, [])


def test_text_that_is_not_a_crl_is_written_as_given(pki):
    assert never_older(crl(pki.issuer, [11], 9), b"hostssl all all all cert\n") == (b"hostssl all all all cert\n", [])


def test_the_cluster_step_keeps_the_newer_crl_and_reports_no_change(tmp_path, pki):
    now = compat.now()
    path = tmp_path / "root.crl"
    root = crl(pki.root_issuer, [], 2, now)
    newer = root + crl(pki.issuer, [11, 12], 8, now)
    older = root + crl(pki.issuer, [11], 7, now - DAY)
    path.write_bytes(newer)
    path.chmod(0o644)
    params = {"directories": [], "lines": [], "snapshot_dir": None, "snapshot_paths": [], "snapshot_group": None,
              "files": [{"path": str(path), "content": older.decode(), "mode": "0644", "diff": False}]}
    done = cluster_files(params, False)
    assert path.read_bytes() == newer and done["changes"] == []
    # A newer one than installed is written.
    newest = root + crl(pki.issuer, [11, 12, 13], 9, now + DAY)
    params["files"][0]["content"] = newest.decode()
    done = cluster_files(params, False)
    assert path.read_bytes() == newest
    assert len(done["changes"]) == 1 and done["changes"][0].startswith(str(path)), done["changes"]
