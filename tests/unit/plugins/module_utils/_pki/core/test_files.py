"""Files: PostgreSQL's key rule (from be-secure-common.c, see PG_SSL_FACTS), atomic writes, readability."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile

import pytest

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.errors import PkiError
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.files import (
    Attrs,
    key_permission_problem,
    readable_by,
    write_atomic,
)

POSTGRES_UID = 1234
KEY_RULE = [
    # (owner uid, mode, PostgreSQL accepts)
    (POSTGRES_UID, 0o600, True),
    (POSTGRES_UID, 0o400, True),
    (POSTGRES_UID, 0o640, False),
    (POSTGRES_UID, 0o604, False),
    (0, 0o640, True),
    (0, 0o600, True),
    (0, 0o660, False),
    (0, 0o644, False),
    (0, 0o650, False),
]


@pytest.mark.parametrize("uid,mode,accepted", KEY_RULE)
def test_key_rule(uid, mode, accepted):
    assert (key_permission_problem(uid, mode, "key") is None) is accepted


def test_write_atomic_creates_with_final_mode_and_leaves_no_temp(tmp_path):
    target = tmp_path / "server.key"
    write_atomic(str(target), b"secret", Attrs(0o640, None, None), "key_path")
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640
    assert target.read_bytes() == b"secret"
    assert [p.name for p in tmp_path.iterdir()] == ["server.key"]


def test_write_into_missing_folder_names_it(tmp_path):
    with pytest.raises(PkiError, match=r"key_path: folder .*/nope does not exist"):
        write_atomic(str(tmp_path / "nope" / "k"), b"x", Attrs(0o600), "key_path")


def test_a_planned_write_reports_then_is_idempotent(tmp_path):
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core import planner

    path = str(tmp_path / "f")

    def write(data, mode=0o644):
        plan = planner.Plan("host")
        changes = plan.write(path, data, Attrs(mode), kind="file", where="p")
        plan.check()
        plan.apply()
        return changes
    assert write(b"a") == ["created"]
    assert write(b"a") == []
    os.chmod(path, 0o666)
    assert write(b"a") == ["mode 0666 -> 0644"]
    assert write(b"b") == ["content changed"]


def test_readable_by_follows_mode_bits(tmp_path):
    folder = tempfile.mkdtemp(dir="/tmp")  # pytest's own tmp root is 0700, closed to other users
    try:
        os.chmod(folder, 0o755)
        path = os.path.join(folder, "k")
        with open(path, "wb") as handle:
            handle.write(b"x")
        os.chmod(path, 0o600)
        assert readable_by(path, "root") is None
        assert "cannot read" in readable_by(path, "nobody")
        os.chmod(path, 0o644)
        assert readable_by(path, "nobody") is None
        os.chmod(folder, 0o700)
        assert "cannot enter folder" in readable_by(path, "nobody")
        assert "does not exist" in readable_by(path, "no-such-user-pgtls")
    finally:
        shutil.rmtree(folder)
