"""Fleet benchmark (make bench-fleet): prints figures, asserts nothing.

On the demo fleet (3 database containers, 1 application container, systemd inside, started afresh), times the
site and clients playbooks on a first rollout and on an unchanged re-run, and counts the commands each host ran:
`podman exec` calls logged by the podman connection at -vvv. The podman connection does not pipeline, so each
module run costs the same few calls as the baseline's ping (temporary folder, run, clean-up); calls divided by
the ping's estimate the module runs per host.
Baseline in the same run: one ansible.builtin.ping on every host.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PKI = ROOT / ".cache" / "bench-fleet" / "pki"
INVENTORY = ROOT / "demo" / "inventory.yml"


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, cwd=ROOT)


def playbook(book: str) -> tuple[float, Counter, str]:
    env = dict(os.environ, PGTLS_PKI_DIR=str(PKI), ANSIBLE_PIPELINING="true", ANSIBLE_NOCOLOR="1",
               ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".cache" / "collections"))
    start = time.monotonic()
    done = subprocess.run([str(BIN / "ansible-playbook"), "-vvv", "-i", str(INVENTORY), book], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - start
    if done.returncode != 0:
        sys.exit(f"{book} failed:\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}")
    exec_line = re.compile(r"^<(pgtls-demo-[\w-]+)> RUN \[b'[^']*podman', b'exec'", re.M)
    execs = Counter(m.group(1) for m in exec_line.finditer(done.stdout))
    changed = dict(re.findall(r"^(pgtls-demo-[\w-]+)\s+: ok=\d+\s+changed=(\d+)", done.stdout, re.M))
    return elapsed, execs, " ".join(f"{h.removeprefix('pgtls-demo-')}={c}" for h, c in sorted(changed.items()))


def main() -> None:
    sh("bash", "scripts/demo-fleet.sh", "down")
    sh("rm", "-rf", str(PKI))
    sh("bash", "scripts/demo-fleet.sh", "hosts")
    playbook("extensions/molecule/shared/prepare.yml")
    baseline = ROOT / ".cache" / "bench-fleet" / "ping.yml"
    baseline.parent.mkdir(parents=True, exist_ok=True)
    baseline.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.ping:\n")
    rows = [("baseline: one ping per host", *playbook(str(baseline)))]
    rows.append(("site, first rollout", *playbook("pgtls.ssl.site")))
    rows.append(("clients, first issue", *playbook("pgtls.ssl.clients")))
    rows.append(("site, unchanged re-run", *playbook("pgtls.ssl.site")))
    rows.append(("clients, unchanged re-run", *playbook("pgtls.ssl.clients")))
    base = rows[0][1]
    # One module run costs as many calls as the ping (the podman connection does not pipeline: temporary folder,
    # run, clean-up), so calls / calls-per-ping estimates the module runs on each host.
    per_run = max(rows[0][2].values())
    print(f"\n{'figure':32} {'wall s':>7} {'x ping':>7}  podman exec calls per host (~module runs)      changed")
    for name, elapsed, execs, changed in rows:
        per_host = " ".join(f"{h.removeprefix('pgtls-demo-')}={n} (~{n / per_run:.0f})" for h, n in sorted(execs.items()))
        print(f"{name:32} {elapsed:7.1f} {elapsed / base:7.1f}  {per_host:46} {changed}")
    sh("bash", "scripts/demo-fleet.sh", "down")


if __name__ == "__main__":
    main()
