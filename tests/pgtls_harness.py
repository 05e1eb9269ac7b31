"""What every test that runs Ansible shares (tests/e2e, tests/faults): the environment that makes deprecations
visible and marks the run's processes, the check that no deprecation warning was printed, and the way to stop a run
whole. Imported as ``pgtls_harness`` (tests/ is on sys.path through tests/conftest.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid

DEPRECATION = "[DEPRECATION WARNING]"
# Every process an Ansible run of this test session starts inherits this variable (workers that setsid() too), so a
# process still carrying it after its test is a process that test left behind.
MARK = "PGTLS_TEST_SESSION"
SESSION = uuid.uuid4().hex


def run_env() -> dict:
    """Environment entries for every ansible-playbook (and ansible-runner) a test starts."""
    return {"ANSIBLE_DEPRECATION_WARNINGS": "1", MARK: SESSION}


def assert_no_deprecation(what, *outputs: str | None) -> None:
    """Fail when a run printed a deprecation warning: what works today and breaks in a later ansible-core."""
    lines = [line for out in outputs if out for line in out.splitlines() if DEPRECATION in line]
    if lines:
        label = " ".join(map(str, what)) if isinstance(what, (list, tuple)) else str(what)
        raise AssertionError(f"{label} printed {len(lines)} deprecation warning(s):\n" + "\n".join(lines[:20]))


def process_tree(root_pid: int) -> set[int]:
    """``root_pid``, its process group and every descendant (read from /proc). Ansible's workers start process
    groups of their own, so the group of ansible-playbook alone misses them and the modules they run."""
    parents, groups = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        groups[int(entry)] = int(fields[2])
    found = {pid for pid, pgid in groups.items() if pgid == root_pid} | {root_pid}
    grew = True
    while grew:
        more = {pid for pid, ppid in parents.items() if ppid in found} - found
        found |= more
        grew = bool(more)
    return found


def kill_tree(proc: subprocess.Popen) -> int:
    """SIGKILL every process of a run: ansible-playbook, its workers and the module processes they started. All
    are stopped first (until no new one appears), so none forks or cleans up in between. Returns how many."""
    stopped: set[int] = set()
    while True:
        pids = process_tree(proc.pid) - stopped
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGSTOP)
            except ProcessLookupError:
                pass
        stopped |= pids
    for pid in stopped:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(stopped)


def marked_processes(session: str = SESSION) -> dict[int, str]:
    """Live processes started by this session's Ansible runs: pid -> command line."""
    marker = f"{MARK}={session}".encode()
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                if marker not in handle.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                found[int(entry)] = handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
    return found


def leftovers(grace: float = 5.0) -> dict[int, str]:
    """The marked processes still alive after ``grace`` seconds (a run's workers may take a moment to exit); they
    are killed, so one test's leftover does not stay for the next."""
    deadline = time.monotonic() + grace
    found = marked_processes()
    while found and time.monotonic() < deadline:
        time.sleep(0.2)
        found = marked_processes()
    for pid in found:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return found
