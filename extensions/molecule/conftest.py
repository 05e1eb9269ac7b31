"""Every scenario's verify reaches its containers with ``podman exec``, not through Ansible.

Molecule hands testinfra its Ansible inventory (``--connection=ansible``); testinfra runs natively only the
connections it knows (ssh, docker, local...) and runs every other command as a whole ``ansible`` process: about a
second each, and a verify makes hundreds. The hosts here are podman containers (the inventory says
``ansible_connection: podman``), so testinfra's own podman backend runs the same commands in the same containers.
Loaded through the verifier's ``rootdir`` option (molecule.yml), which makes this folder the tests' root.
"""

from __future__ import annotations

import os
import re
import subprocess

import yaml


def podman_hosts(inventory_file):
    """The inventory's hosts when every one of them is a podman container, else None (left to Ansible)."""
    with open(inventory_file, encoding="utf-8") as stream:
        hosts = (yaml.safe_load(stream).get("all") or {}).get("hosts") or {}
    if hosts and all((v or {}).get("ansible_connection") == "podman" for v in hosts.values()):
        return list(hosts)
    return None


def pytest_configure(config):
    inventory = os.environ.get("MOLECULE_INVENTORY_FILE")
    if getattr(config.option, "connection", None) != "ansible" or config.option.hosts or not inventory:
        return
    hosts = podman_hosts(inventory)
    if hosts:
        config.option.connection = "podman"
        config.option.hosts = ",".join(hosts)


def playbook(name, *extra, timeout=900):
    """A collection playbook against the scenario's inventory and CA folder, as a user runs it: (exit code, output)."""
    pki = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "pki")
    env = dict(os.environ, PGTLS_PKI_DIR=pki, ANSIBLE_PIPELINING="true", ANSIBLE_FORCE_COLOR="0")
    done = subprocess.run(["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], f"pgtls.ssl.{name}", *extra],
                          check=False, capture_output=True, text=True, env=env, timeout=timeout)
    return done.returncode, done.stdout + done.stderr


def recap_changed(output):
    """changed= of each host in a playbook's recap."""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", output, re.M)}
