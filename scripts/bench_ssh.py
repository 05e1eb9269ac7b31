"""SSH fleet benchmark (make bench-ssh): pgtls.ssl.site against the anchor; prints figures, asserts nothing.

For 1, 3 and 8 database hosts (PGTLS_BENCH_SIZES), each side gets a fresh podman fleet (systemd, PostgreSQL 15,
sshd) reached over real SSH from this machine (pipelining, ControlPersist, forks 10):
  ours:   the pgtls.ssl.site playbook;
  anchor: scripts/anchor/site.yml, the same outcome hand-assembled with community.crypto + community.postgresql.
Timed: the first rollout and an unchanged re-run (its changed count printed), PGTLS_BENCH_ROUNDS times (default
2; the sides alternate, each on a fresh fleet; means with min-max). Then, first round only, not timed, a -vvv re-run
counts the SSH commands each host ran (one per module execution, pipelining on), and psql connects to every host
with sslmode=verify-full by name (hostaddr) to show that both sides worked. Ratios are ours / anchor, same run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
WORK = ROOT / ".cache" / "bench-ssh"
IMAGE = os.environ.get("PGTLS_IMAGE", "localhost/pgtls-bookworm:latest")
NETWORK = "pgtls-bench"
SIZES = [int(s) for s in os.environ.get("PGTLS_BENCH_SIZES", "1,3,8").split(",")]
ROUNDS = int(os.environ.get("PGTLS_BENCH_ROUNDS", "2"))
os.environ.setdefault("CONTAINERS_CONF", str(ROOT / "tests" / "podman" / "containers.conf"))  # the project's podman


def sh(*cmd: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, text=True, capture_output=True, **kw)


def hosts(count: int) -> list[str]:
    return [f"pgtls-bench-db{i}" for i in range(1, count + 1)]


def down() -> None:
    names = sh("podman", "ps", "-a", "--format", "{{.Names}}").stdout.split()
    doomed = [n for n in names if n.startswith("pgtls-bench-")]
    if doomed:
        sh("podman", "rm", "-f", "-t", "0", *doomed, check=False)


def up(count: int) -> dict[str, str]:
    """Start the fleet, authorise our SSH key, return name -> address."""
    down()
    if sh("podman", "network", "exists", NETWORK, check=False).returncode != 0:
        sh("podman", "network", "create", NETWORK)
    for name in hosts(count):
        sh("podman", "run", "-d", "--name", name, "--hostname", name, "--network", NETWORK, "--systemd=always", IMAGE,
           "/sbin/init")
    pub = (WORK / "id_ed25519.pub").read_text()
    addresses = {}
    for name in hosts(count):
        for _second in range(60):
            if sh("podman", "exec", name, "systemctl", "is-system-running", check=False).stdout.strip() in (
                    "running", "degraded"):
                break
            time.sleep(1)
        sh("podman", "exec", "-i", name, "sh", "-c", "mkdir -p -m 700 /root/.ssh && cat > /root/.ssh/authorized_keys "
           "&& chmod 600 /root/.ssh/authorized_keys && systemctl enable --now ssh >/dev/null 2>&1", input=pub)
        addresses[name] = sh("podman", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                             name).stdout.strip()
    return addresses


def inventory(addresses: dict[str, str]) -> Path:
    lines = ["all:", "  vars:", "    ansible_user: root", "    ansible_python_interpreter: /usr/bin/python3",
             f"    ansible_ssh_private_key_file: {WORK / 'id_ed25519'}",
             "    ansible_ssh_common_args: -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
             "  children:", "    pgtls_servers:", "      hosts:"]
    lines += [f"        {name}: {{ansible_host: {addr}}}" for name, addr in addresses.items()]
    path = WORK / "inventory.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


def env() -> dict[str, str]:
    return dict(os.environ, ANSIBLE_PIPELINING="true", ANSIBLE_FORKS="10", ANSIBLE_NOCOLOR="1",
                ANSIBLE_HOST_KEY_CHECKING="false", ANSIBLE_SSH_ARGS="-o ControlMaster=auto -o ControlPersist=60s",
                ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".cache" / "collections"),
                PGTLS_PKI_DIR=str(WORK / "pki"), ANCHOR_PKI=str(WORK / "anchor-pki"))


def play(inv: Path, book: str, *extra: str) -> tuple[float, str]:
    start = time.monotonic()
    done = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inv), *extra, book], cwd=ROOT, env=env(),
                          capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - start
    if done.returncode != 0:
        sys.exit(f"{book} failed:\n{done.stdout[-5000:]}\n{done.stderr[-2000:]}")
    return elapsed, done.stdout


def changed(out: str) -> int:
    return sum(int(c) for c in re.findall(r"^pgtls-bench-db\d+\s+: ok=\d+\s+changed=(\d+)", out, re.M))


def ssh_commands(out: str, addresses: dict[str, str]) -> float:
    """SSH commands per database host in a -vvv run (each module execution is one, with pipelining)."""
    counts = [len(re.findall(rf"^<{re.escape(addr)}> SSH: EXEC ssh ", out, re.M)) for addr in addresses.values()]
    return sum(counts) / len(counts)


def verify(addresses: dict[str, str], root: Path) -> str:
    ok = 0
    for name, addr in addresses.items():
        done = sh("psql", "-X", "-w", "-At", "-c", "select 1",
                  f"host={name} hostaddr={addr} port=5432 dbname=postgres user=postgres sslmode=verify-full "
                  f"sslrootcert={root} connect_timeout=10", check=False)
        # TLS and the name check come before authentication: a server's FATAL (no client certificate) proves them.
        if done.returncode == 0 or "FATAL" in done.stderr or "no password supplied" in done.stderr:
            ok += 1
    return f"{ok}/{len(addresses)}"


SIDES = {
    "ours": ("pgtls.ssl.site", lambda: WORK / "pki" / "root.crt"),
    "anchor": (str(ROOT / "scripts" / "anchor" / "site.yml"), lambda: WORK / "anchor-pki" / "root.crt"),
}


def spread(values: list[float]) -> str:
    mean = sum(values) / len(values)
    return f"{mean:.1f} s" if len(values) == 1 else f"{mean:.1f} s ({min(values):.1f}-{max(values):.1f})"


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    if not (WORK / "id_ed25519").exists():
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(WORK / "id_ed25519"))
    rows = []
    try:
        for size in SIZES:
            # side -> {"first": [...], "again": [...], "ssh": float}; the sides alternate within each round.
            figures = {side: {"first": [], "again": []} for side in SIDES}
            for round_ in range(1, ROUNDS + 1):
                for side, (book, root) in SIDES.items():
                    shutil.rmtree(WORK / "pki", ignore_errors=True)
                    shutil.rmtree(WORK / "anchor-pki", ignore_errors=True)
                    addresses = up(size)
                    inv = inventory(addresses)
                    play(inv, str(ROOT / "extensions" / "molecule" / "shared" / "prepare.yml"))
                    first = play(inv, book)[0]
                    again, out = play(inv, book)
                    figures[side]["first"].append(first)
                    figures[side]["again"].append(again)
                    line = (f"{size} host(s) round {round_} {side}: first {first:.1f} s, re-run {again:.1f} s "
                            f"(changed={changed(out)})")
                    if round_ == 1:
                        loud = play(inv, book, "-vvv")[1]
                        figures[side]["ssh"] = ssh_commands(loud, addresses)
                        line += (f", {figures[side]['ssh']:.1f} SSH commands per host on a re-run, verify-full "
                                 f"{verify(addresses, root())}")
                    print(line, flush=True)
            rows.append((size, figures))
    finally:
        down()
        sh("podman", "network", "rm", "-f", NETWORK, check=False)
    print(f"\nMeans of {ROUNDS} round(s), (min-max) in brackets; ratios of the means, same run.")
    print("\n| database hosts | first rollout, ours / anchor | unchanged re-run, ours / anchor |"
          " SSH commands per host on a re-run, ours / anchor |")
    print("| --- | --- | --- | --- |")
    for size, f in rows:
        o, a = f["ours"], f["anchor"]
        print(f"| {size} | {spread(o['first'])} / {spread(a['first'])} ({mean(o['first']) / mean(a['first']):.2f}x) | "
              f"{spread(o['again'])} / {spread(a['again'])} ({mean(o['again']) / mean(a['again']):.2f}x) | "
              f"{o['ssh']:.1f} / {a['ssh']:.1f} |")
    if len(rows) > 1:
        (s0, f0), (s1, f1) = rows[0], rows[-1]
        for side in SIDES:
            print(f"per added host, {side}: first rollout "
                  f"{(mean(f1[side]['first']) - mean(f0[side]['first'])) / (s1 - s0):.2f} s, "
                  f"re-run {(mean(f1[side]['again']) - mean(f0[side]['again'])) / (s1 - s0):.2f} s")


if __name__ == "__main__":
    main()
