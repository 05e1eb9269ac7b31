# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""Validate, activate and prove one cluster's new files, on its host, in the same execution that wrote them.

Before the reload: the files as PostgreSQL parses them (pg_hba_file_rules, pg_file_settings with later files and
ALTER SYSTEM shadowing ours, pg_ident_file_mappings from 15 on), the installed key, certificate, root and CRLs as
the server will read them, and optionally a throw-away postmaster started with the new SSL settings. Then reload
(or restart, when the server's user joined the key group), wait until the new certificate is served, and connect
with libpq (sslmode=verify-full, by name). On any failure: restore the snapshot, reload, and report the step, its
output and the server log's tail. A stopped cluster gets the checks that need no server, nothing else.

The step names are the server role's words (they were its task names); ``steps`` in the result says what ran.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import time

from ..core import planner
from ..core.errors import PkiError
from ..core.info import fingerprint, leaf_fingerprint
from ..core.probe import served_chain
from ..core.specs import VALIDATE
from . import snapshot

PARSE = "Configuration files (pg_hba.conf, settings, pg_ident.conf) as PostgreSQL parses them"
MATERIAL = "The installed material, as the server will read it"
PRECHECK = "Throw-away postmaster with the new SSL settings"
RESTART = "Restart (a group membership changed)"
RESTART_PG_CTL = "Restart with pg_ctl (no service manager; a group membership changed)"
RELOAD = "Reload"
RELOAD_SQL = "Reload with pg_reload_conf() (no service manager)"
WAIT = "Wait until the server serves the new certificate"
LIBPQ = "Connect with libpq, sslmode=verify-full by name"
STILL_OLD = "the server still serves the previous certificate"
LOG_LINES = 80


class StepFailed(Exception):
    def __init__(self, step: str, detail: str) -> None:
        super().__init__(f'"{step}" failed: {detail}')
        self.step = step
        self.detail = detail


class ActivationFailed(PkiError):
    """The files were restored and the server reloaded; ``log_tail`` is the server log's end (the controller picks
    the lines that explain it)."""

    def __init__(self, message: str, step: str, log_tail: str) -> None:
        super().__init__(message)
        self.details = {"failed_step": step, "log_tail": log_tail}


def parse_sql(settings_file: str, version: int) -> str:
    """One query; every row it returns is an error. A server still running with ssl = off calls every hostssl line
    unmatchable: the new settings turn SSL on, so that one is not an error."""
    name = os.path.basename(settings_file).replace("'", "''")
    sql = ("select 'pg_hba.conf line ' || line_number || ': ' || error from pg_hba_file_rules "
           "where error is not null and error not like '%because SSL is disabled%' "
           "union all "
           "select sourcefile || ':' || sourceline || ': ' || name || ': ' || error from pg_file_settings "
           "where error is not null "
           "union all "
           "select f.name || ' from ' || f.sourcefile || ' is overridden by ' || o.sourcefile || ':' || o.sourceline "
           "from pg_file_settings f join pg_file_settings o on o.name = f.name and o.applied "
           f"where f.sourcefile like '%/{name}' and not f.applied and f.error is null")
    if int(version) >= 15:
        sql += (" union all select 'pg_ident.conf line ' || line_number || ': ' || error from pg_ident_file_mappings "
                "where error is not null")
    return sql


class Commands:
    """Runs programs through the module's ``run_command``, as root or as the server's user (``runuser -u``: its
    groups, its home, cwd /, as ``become_user`` would), each under coreutils' ``timeout``: 124 means no answer."""

    def __init__(self, server_user: str, run_command) -> None:
        self.run_command = run_command
        try:
            self.user = pwd.getpwnam(server_user)
        except KeyError:
            raise PkiError(f"user {server_user} does not exist", where="activate.server_user") from None

    def argv(self, argv: list[str], as_server: bool, timeout: float) -> list[str]:
        limited = ["timeout", str(int(timeout)), *argv]
        if as_server and os.geteuid() != self.user.pw_uid:
            return ["runuser", "-u", self.user.pw_name, "--", *limited]
        return limited

    def run(self, argv: list[str], as_server: bool = False, timeout: float = 120) -> subprocess.CompletedProcess:
        rc, out, err = self.run_command(self.argv(argv, as_server, timeout), cwd="/" if as_server else None,
                                        expand_user_and_vars=False)
        if rc == 124:
            err = f"{argv[0]}: no answer in {timeout:.0f} s"
        return subprocess.CompletedProcess(argv, rc, out, err)


def _output(done: subprocess.CompletedProcess) -> str:
    return " ".join(part.strip() for part in (done.stdout, done.stderr) if part and part.strip())


class Activation:
    def __init__(self, params: dict, commands: Commands | None = None, probe=served_chain, sleep=time.sleep,
                 run_command=None) -> None:
        self.p = params
        self.cluster = params["cluster"]
        self.commands = commands or Commands(params["server_user"], run_command)
        self.probe = probe
        self.sleep = sleep
        self.steps: list[dict] = []
        self.precheck_ms = None
        service = self.cluster.get("service") or ""
        self.service = service
        self.psql = ["psql", "-X", "-At"] + (["-h", self.cluster["socket_dir"]] if self.cluster.get("socket_dir")
                                             else []) + ["-p", str(self.cluster["port"]), "-d", "postgres"]

    def label(self) -> str:
        return f"{self.cluster['version']}/{self.cluster['name']}"

    def step(self, name: str, status: str = "ok", **extra) -> None:
        self.steps.append(dict({"step": name, "status": status}, **extra))

    def command(self, name: str, argv: list[str], as_server: bool = False, status: str = "ok",
                timeout: float = 120) -> subprocess.CompletedProcess:
        done = self.commands.run(argv, as_server=as_server, timeout=timeout)
        if done.returncode != 0:
            raise StepFailed(name, f"non-zero return code {done.returncode}: {_output(done)}")
        self.step(name, status)
        return done

    # The steps ---------------------------------------------------------------------------------------------------
    def parse_check(self) -> None:
        sql = parse_sql(self.p["settings_file"], self.cluster["version"])
        done = self.commands.run(self.psql + ["-c", sql], as_server=True)
        if done.returncode != 0 or done.stdout.strip():
            raise StepFailed(PARSE, _output(done) if done.returncode == 0 else
                             f"non-zero return code {done.returncode}: {_output(done)}")
        self.step(PARSE)

    def material(self) -> None:
        # Imported here: validation needs cryptography's x509 verification helpers, the rest of this file does not.
        from .validate import validate

        params = {name: entry.get("default") for name, entry in VALIDATE.items()}
        params.update(certificate_path=self.p["cert_path"], key_path=self.p["key_path"], ca_path=self.p["ca_path"],
                      crl_path=self.p.get("crl_path"), hostnames=self.p["hostnames"],
                      server_user=self.p["server_user"], warn_days=self.p["warn_days"])
        try:
            found = validate(params)
        except PkiError as exc:
            raise StepFailed(MATERIAL, str(exc)) from None
        if not found["ok"]:
            raise StepFailed(MATERIAL, found["msg"])
        self.step(MATERIAL)

    def precheck(self) -> None:
        started = time.monotonic()
        bin_dir = self.cluster.get("bin_dir") or ""
        with planner.scratch("pgtls-precheck.", self.commands.user.pw_uid, self.commands.user.pw_gid) as scratch:
            data = os.path.join(scratch, "data")
            done = self.commands.run([os.path.join(bin_dir, "initdb"), "-D", data, "-A", "trust", "-U", "precheck",
                                      "--no-sync"], as_server=True)
            if done.returncode != 0:
                raise StepFailed(PRECHECK, f"non-zero return code {done.returncode}: initdb failed: {_output(done)}")
            with open(self.p["settings_file"], encoding="utf-8") as ours:
                settings = ours.read()
            planner.append_text(os.path.join(data, "postgresql.conf"),
                                f"\nlisten_addresses = ''\nunix_socket_directories = '{scratch}'\n{settings}\n")
            log = os.path.join(scratch, "log")
            started_ok = self.commands.run([os.path.join(bin_dir, "pg_ctl"), "-D", data, "-l", log, "-w", "-t", "20",
                                            "-s", "start"], as_server=True, timeout=60).returncode == 0
            self.commands.run([os.path.join(bin_dir, "pg_ctl"), "-D", data, "-m", "immediate", "-s", "stop"],
                              as_server=True, timeout=60)
            if not started_ok:
                lines = [line for line in _read_text(log).splitlines()
                         if any(word in line for word in ("FATAL", "could not", "error"))][:5]
                raise StepFailed(PRECHECK, "non-zero return code: " + " ".join(lines))
        self.precheck_ms = int((time.monotonic() - started) * 1000)
        self.step(PRECHECK, elapsed_ms=self.precheck_ms)

    def reload(self, quiet: bool = False) -> None:
        if self.service:
            argv, name = ["systemctl", "reload", self.service], RELOAD
        else:
            argv, name = self.psql + ["-c", "select pg_reload_conf()"], RELOAD_SQL
        if quiet:
            self.commands.run(argv, as_server=not self.service)
        else:
            self.command(name, argv, as_server=not self.service, status="changed")

    def restart(self) -> None:
        if self.service:
            self.command(RESTART, ["systemctl", "restart", self.service], status="changed")
            return
        log = self.cluster.get("log_file") or os.path.join(self.cluster["data_dir"], "pgtls-postmaster.log")
        self.command(RESTART_PG_CTL, [os.path.join(self.cluster.get("bin_dir") or "", "pg_ctl"), "restart", "-D",
                                      self.cluster["data_dir"], "-m", "fast", "-w", "-t", "60", "-l", log],
                     as_server=True, status="changed", timeout=90)

    def wait_served(self) -> None:
        wanted = leaf_fingerprint(self.p["cert_path"], "activate.cert_path")
        seen = "nothing"
        for attempt in range(self.p["wait_seconds"] + 1):
            try:
                chain = self.probe("127.0.0.1", self.cluster["port"])["chain"]
                seen = fingerprint(chain[0])
                if seen == wanted:
                    self.step(WAIT, attempts=attempt + 1)
                    return
            except PkiError as exc:
                seen = str(exc)
            self.sleep(1)
        raise StepFailed(WAIT, f"it serves {seen}, not {self.p['cert_path']} ({wanted}): {STILL_OLD}")

    def libpq(self) -> None:
        """TLS with the server's name checked against the certificate (hostaddr skips DNS). The name check happens
        before authentication, so a refusal by pg_hba or a password request still proves it."""
        conninfo = (f"host={self.p['hostnames'][0]} hostaddr=127.0.0.1 port={self.cluster['port']} dbname=postgres "
                    f"user={self.p['server_user']} sslmode=verify-full sslrootcert={self.p['ca_path']} "
                    f"connect_timeout=10" + (f" sslcrl={self.p['crl_path']}" if self.p.get("crl_path") else ""))
        done = self.commands.run(["psql", "-X", "-w", "-At", "-c", "select 1", conninfo], timeout=30)
        if done.returncode != 0 and "FATAL:" not in done.stderr and "no password supplied" not in done.stderr:
            raise StepFailed(LIBPQ, f"non-zero return code {done.returncode}: {_output(done)}")
        self.step(LIBPQ)

    # The whole ---------------------------------------------------------------------------------------------------
    def run(self) -> dict:
        running = self.cluster.get("running", True)
        try:
            if running:
                self.parse_check()
            self.material()
            if self.p["precheck_postmaster"]:
                self.precheck()
            if running:
                if self.p["restart"]:
                    self.restart()
                else:
                    self.reload()
                if self.p["verify"]:
                    self.wait_served()
                    self.libpq()
        except StepFailed as failure:
            self.step(failure.step, "failed")
            self.fail(failure, running)
        removed = snapshot.remove(self.p["snapshot_dir"]) if self.p.get("snapshot_dir") else False
        return {"steps": self.steps, "reloaded": running, "precheck_ms": self.precheck_ms,
                "snapshot_removed": removed}

    def fail(self, failure: StepFailed, running: bool) -> None:
        restored = restore(self.p.get("snapshot_dir"), self.p.get("snapshot_paths") or [])
        if running:
            self.reload(quiet=True)
        log = self.cluster.get("log_file")
        tail = "\n".join(_read_text(log).splitlines()[-LOG_LINES:]) if log else ""
        what = ("The previous files were restored and the server reloaded; it serves its previous configuration."
                if restored else "This run replaced no file (an earlier run installed them); the server was reloaded.")
        if not running:
            what = "The previous files were restored; the server is not running." if restored else ""
        raise ActivationFailed(f"{self.label()}: {failure} {what}", failure.step, tail)


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()[-200000:]
    except OSError:
        return ""


def restore(folder: str | None, paths: list[str]) -> bool:
    """Put the snapshot's copies back and remove it (snapshot.restore); False when there is none."""
    return snapshot.restore(folder, paths)
