"""SSH fleet benchmark (make bench-ssh): site + clients against the anchor; prints figures, asserts nothing.

For 1, 3, 8, 16 and 24 database hosts (PGTLS_BENCH_SIZES) and one application host, each side gets a fresh podman
fleet (systemd, PostgreSQL 15, sshd) reached over real SSH from this machine (pipelining, ControlPersist, forks 10):
  ours:   the pgtls.ssl.site playbook, then pgtls.ssl.clients;
  anchor: scripts/anchor/site.yml, then scripts/anchor/clients.yml: the same outcome hand-assembled with
          community.crypto + community.postgresql.
Both get the same rule for remote logins (hostssl all all 0.0.0.0/0 cert) and a certificate for the role app on
the application host. Timed: the first rollout and an unchanged re-run of both playbooks (the changed count
printed), PGTLS_BENCH_ROUNDS times (default 2; the sides alternate, each on a fresh fleet; means with min-max). Then,
first round only, not timed, a -vvv re-run counts the SSH commands each host ran (one per module execution,
pipelining on); psql connects from this machine to every database host with sslmode=verify-full by name (hostaddr),
and the application host logs in to every database host as app with its certificate and verify-full, to show that
both sides worked. Ratios are ours / anchor, same run; the per-host slope is a least-squares fit over the sizes.
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
SIZES = [int(s) for s in os.environ.get("PGTLS_BENCH_SIZES", "1,3,8,16,24").split(",")]
ROUNDS = int(os.environ.get("PGTLS_BENCH_ROUNDS", "2"))
os.environ.setdefault("CONTAINERS_CONF", str(ROOT / "tests" / "podman" / "containers.conf"))  # the project's podman


def sh(*cmd: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, text=True, capture_output=True, **kw)


APP = "pgtls-bench-app"


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
    for name in [*hosts(count), APP]:
        sh("podman", "run", "-d", "--name", name, "--hostname", name, "--network", NETWORK, "--systemd=always", IMAGE,
           "/sbin/init")
    pub = (WORK / "id_ed25519.pub").read_text()
    addresses = {}
    for name in [*hosts(count), APP]:
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
             # The anchor's remote login rule; the default rules (local and loopback) stay in front of it.
             "    pgtls_hba_rules:", "      - {type: local, database: all, user: postgres, method: peer}",
             "      - {type: local, database: all, user: all, method: peer}",
             "      - {type: hostssl, database: all, user: all, address: 0.0.0.0/0, method: cert}",
             "    pgtls_client_certs: [{name: app, user: app}]",
             "  children:", "    pgtls_servers:", "      hosts:"]
    lines += [f"        {name}: {{ansible_host: {addr}}}" for name, addr in addresses.items() if name != APP]
    lines += ["    pgtls_clients:", "      hosts:", f"        {APP}: {{ansible_host: {addresses[APP]}}}"]
    path = WORK / "inventory.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


def env() -> dict[str, str]:
    return dict(os.environ, ANSIBLE_PIPELINING="true", ANSIBLE_FORKS="10", ANSIBLE_NOCOLOR="1",
                ANSIBLE_HOST_KEY_CHECKING="false", ANSIBLE_SSH_ARGS="-o ControlMaster=auto -o ControlPersist=60s",
                ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".cache" / "collections"),
                PGTLS_PKI_DIR=str(WORK / "pki"), ANCHOR_PKI=str(WORK / "anchor-pki"))


def play(inv: Path, books: list[str], *extra: str) -> tuple[float, str]:
    """Run the playbooks one after the other; their wall time together and their output."""
    start = time.monotonic()
    outs = []
    for book in books:
        done = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inv), *extra, book], cwd=ROOT, env=env(),
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.exit(f"{book} failed:\n{done.stdout[-5000:]}\n{done.stderr[-2000:]}")
        outs.append(done.stdout)
    return time.monotonic() - start, "\n".join(outs)


def changed(out: str) -> int:
    return sum(int(c) for c in re.findall(r"^pgtls-bench-\S+\s+: ok=\d+\s+changed=(\d+)", out, re.M))


def ssh_commands(out: str, addresses: list[str]) -> float:
    """SSH commands per host of addresses in a -vvv run (each module execution is one, with pipelining)."""
    counts = [len(re.findall(rf"^<{re.escape(addr)}> SSH: EXEC ssh ", out, re.M)) for addr in addresses]
    return sum(counts) / len(counts)


def logins(addresses: dict[str, str]) -> str:
    """From the application host, as app with its certificate and verify-full, to every database host."""
    servers = [name for name in addresses if name != APP]
    script = ("ok=0; for h in \"$@\"; do [ \"$(psql -X -w -At -c 'select current_user' \"host=$h dbname=postgres "
              "user=app sslmode=verify-full connect_timeout=10\")\" = app ] && ok=$((ok+1)); done; echo $ok")
    done = sh("podman", "exec", "-u", "app", "-w", "/home/app", APP, "sh", "-c", script, "sh", *servers, check=False)
    return f"{done.stdout.strip() or 0}/{len(servers)}"


def verify(addresses: dict[str, str], root: Path) -> str:
    ok = 0
    servers = {name: addr for name, addr in addresses.items() if name != APP}
    for name, addr in servers.items():
        done = sh("psql", "-X", "-w", "-At", "-c", "select 1",
                  f"host={name} hostaddr={addr} port=5432 dbname=postgres user=postgres sslmode=verify-full "
                  f"sslrootcert={root} connect_timeout=10", check=False)
        # TLS and the name check come before authentication: a server's FATAL (no client certificate) proves them.
        if done.returncode == 0 or "FATAL" in done.stderr or "no password supplied" in done.stderr:
            ok += 1
    return f"{ok}/{len(servers)}"


SIDES = {
    "ours": (["pgtls.ssl.site", "pgtls.ssl.clients"], lambda: WORK / "pki" / "root.crt"),
    "anchor": ([str(ROOT / "scripts" / "anchor" / name) for name in ("site.yml", "clients.yml")],
               lambda: WORK / "anchor-pki" / "root.crt"),
}


def spread(values: list[float]) -> str:
    mean = sum(values) / len(values)
    return f"{mean:.1f} s" if len(values) == 1 else f"{mean:.1f} s ({min(values):.1f}-{max(values):.1f})"


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def slope(points: list[tuple[int, float]]) -> float:
    """Seconds per added database host: the least-squares line through (hosts, mean seconds)."""
    xs, ys = [x for x, y in points], [y for x, y in points]
    mx, my = mean(xs), mean(ys)
    return sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x in xs)


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
                for side, (books, root) in SIDES.items():
                    shutil.rmtree(WORK / "pki", ignore_errors=True)
                    shutil.rmtree(WORK / "anchor-pki", ignore_errors=True)
                    addresses = up(size)
                    inv = inventory(addresses)
                    play(inv, [str(ROOT / "extensions" / "molecule" / "shared" / "prepare.yml")])
                    first = play(inv, books)[0]
                    again, out = play(inv, books)
                    figures[side]["first"].append(first)
                    figures[side]["again"].append(again)
                    line = (f"{size} host(s) round {round_} {side}: first {first:.1f} s, re-run {again:.1f} s "
                            f"(changed={changed(out)})")
                    if round_ == 1:
                        loud = play(inv, books, "-vvv")[1]
                        servers = [addr for name, addr in addresses.items() if name != APP]
                        figures[side]["ssh"] = ssh_commands(loud, servers)
                        figures[side]["ssh_app"] = ssh_commands(loud, [addresses[APP]])
                        line += (f", SSH commands on a re-run: {figures[side]['ssh']:.1f} per database host, "
                                 f"{figures[side]['ssh_app']:.0f} on the application host; verify-full "
                                 f"{verify(addresses, root())}, app's certificate logins {logins(addresses)}")
                    print(line, flush=True)
            rows.append((size, figures))
    finally:
        down()
        sh("podman", "network", "rm", "-f", NETWORK, check=False)
    print(f"\nMeans of {ROUNDS} round(s), (min-max) in brackets; ratios of the means, same run; site then clients.")
    print("\n| database hosts | first rollout, ours / anchor | unchanged re-run, ours / anchor |"
          " SSH commands per database host / application host on a re-run, ours; anchor |")
    print("| --- | --- | --- | --- |")
    for size, f in rows:
        o, a = f["ours"], f["anchor"]
        print(f"| {size} | {spread(o['first'])} / {spread(a['first'])} ({mean(o['first']) / mean(a['first']):.2f}x) | "
              f"{spread(o['again'])} / {spread(a['again'])} ({mean(o['again']) / mean(a['again']):.2f}x) | "
              f"{o['ssh']:.1f} / {o['ssh_app']:.0f}; {a['ssh']:.1f} / {a['ssh_app']:.0f} |")
    if len(rows) > 1:
        for side in SIDES:
            first = slope([(size, mean(f[side]["first"])) for size, f in rows])
            again = slope([(size, mean(f[side]["again"])) for size, f in rows])
            print(f"per added database host ({side}, least squares over {len(rows)} sizes): first rollout "
                  f"{first:.2f} s, re-run {again:.2f} s")


if __name__ == "__main__":
    main()
