"""A stand-in for `systemctl restart etcd` in tests/e2e/test_patroni.py (no systemd on the loopback fleet): stop
the member's etcd (its pid file) if it runs, start it again with the variables of its environment file, as systemd's
EnvironmentFile would, detached, and return at once (the collection's etcd_config waits for /health itself).

    etcd_service.py ETCD_BINARY ENVIRONMENT_FILE PID_FILE LOG_FILE
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

LINE = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$')


def variables(path: str) -> dict:
    found = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            match = LINE.match(line) if line.strip() and not line.lstrip().startswith("#") else None
            if match:
                value = match.group(2).strip()
                found[match.group(1)] = value[1:-1] if value[:1] == value[-1:] == '"' else value
    return found


def stop(pid_file: str) -> None:
    try:
        pid = int(open(pid_file, encoding="ascii").read().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def main(etcd: str, env_file: str, pid_file: str, log_file: str) -> None:
    stop(pid_file)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
    env.update(variables(env_file))
    with open(log_file, "ab") as log:
        process = subprocess.Popen([etcd], env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, close_fds=True)
    with open(pid_file, "w", encoding="ascii") as handle:
        handle.write(f"{process.pid}\n")


if __name__ == "__main__":
    main(*sys.argv[1:5])
