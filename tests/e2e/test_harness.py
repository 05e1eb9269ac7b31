"""The harness's own guards, on the ansible-core under test: a deprecation warning printed by a run fails the test
that ran it, and a process a run leaves behind is found (tests/conftest.py fails the test module then)."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from conftest import run_playbook
from pgtls_harness import marked_processes, run_env

DEPRECATED = """
- name: A play that uses a deprecated variable
  hosts: localhost
  gather_facts: false
  tasks:
    - name: play_hosts is deprecated (ansible-core 2.19 and later say so)
      ansible.builtin.debug:
        msg: "{{ play_hosts }}"
"""


def test_a_deprecation_warning_fails_the_run(tmp_path):
    book = tmp_path / "deprecated.yml"
    book.write_text(DEPRECATED)
    with pytest.raises(AssertionError, match=r"printed 1 deprecation warning\(s\):\n.*play_hosts"):
        run_playbook(str(book), {})


def test_a_process_left_behind_is_found():
    """A process that left its run's session (as Ansible's workers do) still carries the run's mark."""
    stray = subprocess.Popen(["sleep", "60"], env={**os.environ, **run_env()}, start_new_session=True)
    try:
        # Popen returns once exec has begun (its close-on-exec pipe closed); the kernel sets the new program's
        # environment a moment later, so /proc/<pid>/environ may still be empty (seen once on CI).
        deadline = time.monotonic() + 5
        while marked_processes().get(stray.pid) != "sleep 60" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marked_processes().get(stray.pid) == "sleep 60"
    finally:
        stray.kill()
        stray.wait()
    assert stray.pid not in marked_processes()
