# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""Validate, activate and prove a TLS service's new files, on its host, in the same execution that wrote them.

One engine, one order of steps for every service (``Activation.run``): check the installed material as the service
and its clients will read it, check the files as the service parses them, optionally start a throw-away copy with
the new settings, reload (or restart, or start a stopped service that starts on demand), wait until the new
certificate is served, and prove it with a real client. A service may check and reload in one go
(``parse_check_and_reload``: PostgreSQL's query and pg_reload_conf() in one session, the reload only when the
query found nothing). On any failure: restore the snapshot, reload, and report
the step, its output and the log's tail. A service that is stopped and is not started here gets the checks that need
no server, nothing else.

A service differs in its steps only: ``PostgreSQL`` (pg_hba_file_rules, pg_file_settings and pg_ident_file_mappings
as the parse check, a throw-away postmaster, reload or restart, libpq to the cluster) and ``PgBouncer``
(pgbouncer.ini as PgBouncer reads it and the files it names, its own client certificate for PostgreSQL, systemd
reload - PgBouncer keeps its old TLS files when the new ones are bad, so only the wait and the proof tell - and
libpq to its admin console), ``Patroni`` (a member: patronictl reload, which reloads PostgreSQL and rebuilds the
REST API's HTTPS server; the wait and the proof cover both, the REST API over mTLS with the ctl certificate)
and ``Etcd`` (a member: a restart when its environment file or trusted CA file changed, else nothing - it reads
its certificate at each handshake; the wait covers its client and peer ports, the proof is /health over mTLS).
``activation_for`` picks the service from the parameters; others plug in the same way: a subclass with its own steps.

The step names are the roles' words (they were their task names); ``steps`` in the result says what ran.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import time

from ..core import planner
from ..core.errors import PkiError
from ..core.files import MAX_CRL_BYTES
from ..core.info import fingerprint, leaf_fingerprint
from ..core.probe import served_chain
from . import snapshot

PARSE = "Configuration files (pg_hba.conf, settings, pg_ident.conf) as PostgreSQL parses them"
MATERIAL = "The installed material, as the server will read it"
PRECHECK = "Throw-away postmaster with the new SSL settings"
RESTART = "Restart (a group membership changed)"
RESTART_PG_CTL = "Restart with pg_ctl (no service manager; a group membership changed)"
RELOAD = "Reload"
RELOAD_SQL = "Reload with pg_reload_conf() (no service manager)"
RELOAD_CHECKED = "Reload with pg_reload_conf(), in the parse check's session (it found nothing)"
WAIT = "Wait until the server serves the new certificate"
LIBPQ = "Connect with libpq, sslmode=verify-full by name"
STILL_OLD = "the server still serves the previous certificate"
STREAMING = "The standby streams from its primary over verify-full with the replication certificate"
# How long a standby may take to stream after a reload: its WAL receiver retries every wal_retrieve_retry_interval
# (5 s by default), and the primary may reload its pg_hba.conf in the same run, moments later.
STREAMING_SECONDS = 30
# What the standby query answers for a cluster that is not in recovery.
NOT_IN_RECOVERY = "not-in-recovery"
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


def backoff(total: float, first: float = 0.05, most: float = 1.0) -> list[float]:
    """The pauses between probes: ``first`` seconds, doubling up to ``most``, ``total`` seconds in all."""
    left, delay, most_ms, delays = int(total * 1000), int(first * 1000), int(most * 1000), []
    while left > 0:
        step = min(delay, most_ms, left)
        delays.append(step / 1000)
        left, delay = left - step, delay * 2
    return delays


def _output(done: subprocess.CompletedProcess) -> str:
    return " ".join(part.strip() for part in (done.stdout, done.stderr) if part and part.strip())


def psql_argv(cluster: dict) -> list[str]:
    """psql on a cluster's socket (its folder and port), database postgres, unaligned bare output; run as the
    server's user (Commands.run(..., as_server=True))."""
    return ["psql", "-X", "-At"] + (["-h", cluster["socket_dir"]] if cluster.get("socket_dir") else []) + [
        "-p", str(cluster["port"]), "-d", "postgres"]


class Activation:
    """The engine: the steps of every service in one order, the restore on failure. A service (a subclass) gives
    its steps; a step it lacks is skipped (``parse_check`` and ``precheck`` do nothing unless a service has one)."""

    SERVICE = "service"
    WAIT = WAIT
    PROVE = LIBPQ

    def __init__(self, params: dict, commands: Commands | None = None, probe=served_chain, sleep=time.sleep,
                 run_command=None) -> None:
        self.p = params
        self.commands = commands or Commands(params["server_user"], run_command)
        self.probe = probe
        self.sleep = sleep
        self.steps: list[dict] = []
        self.precheck_ms = None
        self.mark = time.monotonic()
        self._running: bool | None = None

    # What a service says about itself -------------------------------------------------------------------------
    def label(self) -> str:
        return self.SERVICE

    def port(self) -> int:
        raise NotImplementedError

    def running(self) -> bool:
        """Is the service up now (before this activation)? Asked once (``up_now``), then remembered."""
        if self._running is None:
            self._running = self.up_now()
        return self._running

    def up_now(self) -> bool:
        raise NotImplementedError

    @staticmethod
    def answers(serve) -> bool:
        """Does ``serve()`` get the service's certificate (a TLS handshake that fails: not up)?"""
        try:
            serve()
        except PkiError:
            return False
        return True

    def starts_stopped(self) -> bool:
        """Does the activation start the service when it is stopped (else: checks only)?"""
        return False

    def log_file(self) -> str | None:
        return None

    def materials(self) -> list[dict]:
        """validate's parameters for each certificate the service holds (its own, and any it presents to others)."""
        return [{"certificate_path": self.p["cert_path"], "key_path": self.p["key_path"], "ca_path": self.p["ca_path"],
                 "crl_path": self.p.get("crl_path"), "hostnames": self.p["hostnames"]}]

    # The steps ---------------------------------------------------------------------------------------------------
    def step(self, name: str, status: str = "ok", **extra) -> None:
        # ms: how long the step took (since the previous step ended, or the activation started).
        now = time.monotonic()
        self.steps.append(dict({"step": name, "status": status, "ms": int((now - self.mark) * 1000)}, **extra))
        self.mark = now

    def command(self, name: str, argv: list[str], as_server: bool = False, status: str = "ok",
                timeout: float = 120) -> subprocess.CompletedProcess:
        done = self.commands.run(argv, as_server=as_server, timeout=timeout)
        if done.returncode != 0:
            raise StepFailed(name, f"non-zero return code {done.returncode}: {_output(done)}")
        self.step(name, status)
        return done

    def parse_check(self) -> None:
        """The new files as the service parses them (none by default)."""

    def parse_check_and_reload(self) -> bool:
        """The parse check and the reload in one go, the reload only when the check passed; False: not done (the
        service has no such step, or the check found something: ``parse_check`` then names it)."""
        return False

    def material(self) -> None:
        # Imported here: validation needs cryptography's x509 verification helpers, the rest of this file does not.
        from .validate import check

        for checks in self.materials():
            try:
                found = check(server_user=self.p["server_user"], warn_days=self.p["warn_days"], **checks)
            except PkiError as exc:
                raise StepFailed(MATERIAL, str(exc)) from None
            if not found["ok"]:
                raise StepFailed(MATERIAL, found["msg"])
        self.step(MATERIAL)

    def precheck(self) -> None:
        """A throw-away copy of the service with the new settings (none by default)."""

    def reload(self, quiet: bool = False) -> None:
        raise NotImplementedError

    def restart(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def wait_served(self) -> None:
        """Probe until the new certificate is served: at once, then after 0.05 s, doubling up to 1 s between probes,
        wait_seconds in all (a reload takes effect a few milliseconds after systemctl or pg_reload_conf returns)."""
        wanted = leaf_fingerprint(self.p["cert_path"], "activate.cert_path")
        seen = "nothing"
        delays = backoff(self.p["wait_seconds"])
        for attempt, delay in enumerate(delays + [None]):
            try:
                served = self.served()
                seen = next(iter(served.values())) if len(served) == 1 else served
                if set(served.values()) == {wanted}:
                    self.step(self.WAIT, attempts=attempt + 1)
                    return
            except PkiError as exc:
                seen = str(exc)
            if delay is not None:
                self.sleep(delay)
        raise StepFailed(self.WAIT, f"it serves {seen}, not {self.p['cert_path']} ({wanted}): {STILL_OLD}")

    def served(self) -> dict:
        """The fingerprint of the leaf each endpoint of the service serves now (a service may have more than one)."""
        return {"server": fingerprint(self.probe("127.0.0.1", self.port())["chain"][0])}

    def serves_installed(self) -> bool:
        """Does every endpoint serve the installed certificate now? (False when one cannot be asked.)"""
        wanted = leaf_fingerprint(self.p["cert_path"], "cert_path")
        try:
            return set(self.served().values()) == {wanted}
        except PkiError:
            return False

    def address(self) -> str:
        """Where the proof connects: the service's name for verify-full, hostaddr to skip DNS."""
        return f"host={self.p['hostnames'][0]} hostaddr=127.0.0.1 port={self.port()}"

    def prove(self) -> None:
        """TLS with the service's name checked against its certificate, by a real client (libpq; hostaddr skips
        DNS). The name check happens before authentication, so a refusal after it still proves it."""
        conninfo = (f"{self.address()} {self.conninfo()} "
                    f"sslmode=verify-full sslrootcert={self.p['ca_path']} connect_timeout=10"
                    + (f" sslcrl={self.p['crl_path']}" if self.p.get("crl_path") else ""))
        done = self.commands.run(["psql", "-X", "-w", "-At", "-c", "select 1", conninfo], timeout=30)
        if done.returncode != 0 and not any(word in done.stderr for word in self.REFUSED_AFTER_THE_NAME):
            raise StepFailed(self.PROVE, f"non-zero return code {done.returncode}: {_output(done)}")
        self.step(self.PROVE)

    REFUSED_AFTER_THE_NAME = ("FATAL:", "no password supplied")

    def wait_streaming(self) -> None:
        raise NotImplementedError

    def conninfo(self) -> str:
        raise NotImplementedError

    # The whole ---------------------------------------------------------------------------------------------------
    def run(self) -> dict:
        self.mark = time.monotonic()
        running = self.running()
        serving = running or self.starts_stopped()
        try:
            self.material()
            precheck, restart = self.p.get("precheck_postmaster"), self.p.get("restart")
            # Nothing between the parse check and a reload: the service may do both at once.
            if not (running and not precheck and not restart and self.parse_check_and_reload()):
                if running:
                    self.parse_check()
                if precheck:
                    self.precheck()
                if running:
                    if restart:
                        self.restart()
                    else:
                        self.reload()
            if serving and self.starts_stopped():
                self.start()
            if serving and self.p["verify"]:
                self.wait_served()
                self.prove()
                if self.p.get("standby_cert_path"):
                    self.wait_streaming()
        except StepFailed as failure:
            self.step(failure.step, "failed")
            self.fail(failure, running)
        removed = snapshot.remove(self.p["snapshot_dir"]) if self.p.get("snapshot_dir") else False
        return {"steps": self.steps, "reloaded": serving, "precheck_ms": self.precheck_ms,
                "snapshot_removed": removed}

    def fail(self, failure: StepFailed, running: bool) -> None:
        restored = restore(self.p.get("snapshot_dir"), self.p.get("snapshot_paths") or [])
        if running or self.starts_stopped():
            self.reload(quiet=True)
        log = self.log_file()
        tail = "\n".join(_read_text(log).splitlines()[-LOG_LINES:]) if log else ""
        what = (f"The previous files were restored and the {self.SERVICE} reloaded; it serves its previous "
                "configuration." if restored else
                f"This run replaced no file (an earlier run installed them); the {self.SERVICE} was reloaded.")
        if not running and not self.starts_stopped():
            what = (f"The previous files were restored; the {self.SERVICE} is not running." if restored else "")
        raise ActivationFailed(f"{self.label()}: {failure} {what}".rstrip(), failure.step, tail)


class PostgreSQL(Activation):
    """One PostgreSQL cluster (``cluster``: as pgtls.ssl.cluster_info describes it)."""

    SERVICE = "server"

    def __init__(self, params: dict, *args, **kwargs) -> None:
        super().__init__(params, *args, **kwargs)
        self.cluster = params["cluster"]
        self.service = self.cluster.get("service") or ""
        self.psql = psql_argv(self.cluster)

    def label(self) -> str:
        return f"{self.cluster['version']}/{self.cluster['name']}"

    def port(self) -> int:
        return self.cluster["port"]

    def up_now(self) -> bool:
        return self.cluster.get("running", True)

    def log_file(self) -> str | None:
        return self.cluster.get("log_file")

    def conninfo(self) -> str:
        return f"dbname=postgres user={self.p['server_user']}"

    def wait_streaming(self) -> None:
        """A standby: its WAL receiver streams, connected with sslmode=verify-full and the replication certificate
        (pg_stat_wal_receiver's conninfo, as libpq reports the connection's settings)."""
        # Imported here: only a standby needs the CRL reader.
        from .sessions import certificate_revoked

        try:
            revoked = bool(self.p.get("crl_path")) and certificate_revoked(
                self.p["standby_cert_path"], self.p["crl_path"], "activate.standby_cert_path")
        except PkiError as exc:
            raise StepFailed(STREAMING, str(exc)) from None
        if revoked:
            # The revoke playbook ends its walsender on the primary: from then on the primary refuses it.
            self.step(STREAMING, "skipped", reason="its replication certificate is revoked by the CRL it holds")
            return
        wanted = ("sslmode=verify-full", f"sslcert={self.p['standby_cert_path']}")
        # A cluster not in recovery is not a standby yet (its primary_conninfo waits for pg_basebackup) or no longer
        # (promoted): nothing streams to wait for.
        sql = ("select case when pg_is_in_recovery() then coalesce((select status || ' ' || coalesce(conninfo, '') "
               f"from pg_stat_wal_receiver), '') else '{NOT_IN_RECOVERY}' end")
        seen = "no WAL receiver"
        for attempt, delay in enumerate(backoff(STREAMING_SECONDS) + [None]):
            done = self.commands.run(self.psql + ["-c", sql], as_server=True, timeout=30)
            seen = _output(done) if done.returncode != 0 else (done.stdout.strip() or "no WAL receiver")
            words = seen.split()
            if done.returncode == 0 and words == [NOT_IN_RECOVERY]:
                self.step(STREAMING, "skipped", reason="not in recovery: not a standby (yet); build it with "
                          "pg_basebackup over the same primary_conninfo, then add standby.signal")
                return
            if done.returncode == 0 and words[:1] == ["streaming"] and all(w in words for w in wanted):
                self.step(STREAMING, attempts=attempt + 1)
                return
            if delay is not None:
                self.sleep(delay)
        raise StepFailed(STREAMING, f"after {STREAMING_SECONDS} s its WAL receiver is: {seen[:600]} (wanted: "
                         f"streaming with {' and '.join(wanted)}); the primary's log says why it refused")

    def parse_check(self) -> None:
        sql = parse_sql(self.p["settings_file"], self.cluster["version"])
        done = self.commands.run(self.psql + ["-c", sql], as_server=True)
        if done.returncode != 0 or done.stdout.strip():
            raise StepFailed(PARSE, _output(done) if done.returncode == 0 else
                             f"non-zero return code {done.returncode}: {_output(done)}")
        self.step(PARSE)

    def parse_check_and_reload(self) -> bool:
        """One psql, one backend: pg_reload_conf() where the parse check's query returns no row (a Result node's
        one-time filter: the function is not called when a row exists). A reload is a SIGHUP whoever sends it
        (systemctl reload, pg_ctl reload, pg_reload_conf()); this saves a second psql and the service manager's
        pg_ctlcluster. A row found: False, and ``parse_check`` runs the query alone to name it."""
        sql = parse_sql(self.p["settings_file"], self.cluster["version"])
        done = self.commands.run(self.psql + ["-c", f"select pg_reload_conf() where not exists ({sql})"],
                                 as_server=True)
        if done.returncode != 0:
            raise StepFailed(PARSE, f"non-zero return code {done.returncode}: {_output(done)}")
        if done.stdout.strip() != "t":
            return False
        self.step(PARSE)
        self.step(RELOAD_CHECKED, "changed")
        return True

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


PGBOUNCER_PARSE = "pgbouncer.ini as PgBouncer reads it, and the files it names"
PGBOUNCER_RELOAD = "Reload (PgBouncer keeps its old TLS files when the new ones are bad)"
PGBOUNCER_START = "Start and enable"
PGBOUNCER_WAIT = "Wait until PgBouncer serves the installed certificate"
# pgbouncer.ini's settings that name a file PgBouncer must read (a missing one: a reload keeps the old TLS files).
PGBOUNCER_FILES = ("client_tls_key_file", "client_tls_cert_file", "client_tls_ca_file", "server_tls_ca_file",
                   "server_tls_key_file", "server_tls_cert_file", "auth_file", "auth_hba_file", "auth_ident_file")


class PgBouncer(Activation):
    """PgBouncer under systemd (``pgbouncer``: its port, unit, pgbouncer.ini, log and own client certificate)."""

    SERVICE = "PgBouncer"
    WAIT = PGBOUNCER_WAIT
    # PgBouncer may require a client certificate: "certificate required" comes after the name check too.
    REFUSED_AFTER_THE_NAME = ("FATAL:", "no password supplied", "alert certificate required")

    def __init__(self, params: dict, *args, **kwargs) -> None:
        super().__init__(params, *args, **kwargs)
        self.bouncer = params["pgbouncer"]

    def label(self) -> str:
        return f"pgbouncer on port {self.bouncer['port']}"

    def port(self) -> int:
        return self.bouncer["port"]

    def up_now(self) -> bool:
        return self.commands.run(["systemctl", "is-active", "--quiet", self.bouncer["service"]], timeout=30).returncode == 0

    def starts_stopped(self) -> bool:
        return True

    def log_file(self) -> str | None:
        return self.bouncer.get("log_file")

    def client_files(self) -> str:
        if not self.bouncer.get("client_cert_path"):
            return ""
        return f" sslcert={self.bouncer['client_cert_path']} sslkey={self.bouncer['client_key_path']}"

    def conninfo(self) -> str:
        return f"dbname=pgbouncer user={self.bouncer['probe_user']}" + self.client_files()

    def materials(self) -> list[dict]:
        found = super().materials()
        if self.bouncer.get("client_cert_path"):
            # PgBouncer's own certificate for PostgreSQL, as PostgreSQL will check it.
            found.append({"certificate_path": self.bouncer["client_cert_path"],
                          "key_path": self.bouncer["client_key_path"], "ca_path": self.p["ca_path"],
                          "purpose": "client"})
        return found

    def parse_check(self) -> None:
        problems = pgbouncer_ini_problems(self.bouncer["config_file"])
        if problems:
            raise StepFailed(PGBOUNCER_PARSE, "; ".join(problems))
        self.step(PGBOUNCER_PARSE)

    def reload(self, quiet: bool = False) -> None:
        argv = ["systemctl", "reload", self.bouncer["service"]]
        if quiet:
            self.commands.run(argv)
        else:
            self.command(PGBOUNCER_RELOAD, argv, status="changed")

    def start(self) -> None:
        self.command(PGBOUNCER_START, ["systemctl", "enable", "--now", self.bouncer["service"]],
                     status="ok" if self.running() else "changed")


def pgbouncer_ini_problems(path: str) -> list[str]:
    """What PgBouncer would refuse in ``path`` or fail to read on a reload: no [pgbouncer] section, a line that is
    not ``key = value``, a file named by a TLS or auth setting that does not exist. (``%include`` is followed.)"""
    problems: list[str] = []
    settings: dict[str, str] = {}
    section = None  # an included file goes on in the section of its %include line, as PgBouncer reads it

    def read(name: str, depth: int) -> None:
        nonlocal section
        try:
            text = _read_file(name)
        except OSError as exc:
            problems.append(f"{name}: cannot be read ({exc.strerror})")
            return
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line[0] in ";#":
                continue
            if line.lower().startswith("%include"):
                if depth < 5:
                    read(line.split(None, 1)[1].strip() if " " in line else "", depth + 1)
                continue
            if line.startswith("["):
                if not line.endswith("]"):
                    problems.append(f"{name}:{number}: section header without ]")
                section = line[1:-1].strip().lower()
                continue
            if "=" not in line:
                problems.append(f"{name}:{number}: not a key = value line")
                continue
            if section == "pgbouncer":
                key, value = (part.strip() for part in line.split("=", 1))
                settings[key.lower()] = value

    read(path, 0)
    if not problems and not settings:
        problems.append(f"{path}: no [pgbouncer] section with settings")
    for key in PGBOUNCER_FILES:
        value = settings.get(key, "").strip("'\"")
        if value and not os.path.isfile(value):
            problems.append(f"{path}: {key} = {value}: no such file")
    return problems


PATRONI_RELOAD = "Reload Patroni (patronictl reload: PostgreSQL and the REST API)"
PATRONI_WAIT = "Wait until the REST API and PostgreSQL serve the new certificate"
PATRONI_REST = "The REST API answers over mTLS (the ctl certificate), verified by name"
PATRONI_CYCLE = ("Wait one Patroni cycle (loop_wait): the served certificate stays, so nothing shows when Patroni "
                 "has reloaded PostgreSQL")


class Patroni(Activation):
    """A Patroni member (``patroni``: its configuration file, scope and name, the REST API's and PostgreSQL's
    connect addresses, the ctl client pair). The file was written by pgtls.ssl.patroni_config; on failure it is put
    back (``patroni.restore``) and Patroni reloaded again."""

    SERVICE = "Patroni"
    WAIT = PATRONI_WAIT
    PROVE = LIBPQ

    def __init__(self, params: dict, *args, **kwargs) -> None:
        super().__init__(params, *args, **kwargs)
        self.member = params["patroni"]
        self.pending_restart: dict | None = None  # what the REST API said after the reload (prove)
        # The member already serves the installed certificate: a reload shows nothing, so wait one Patroni cycle.
        self.wait_cycle = False

    def label(self) -> str:
        return f"Patroni member {self.member['member']}"

    def port(self) -> int:
        return self.member["rest_port"]

    def _served(self, rest: bool) -> str:
        m = self.member
        if rest:
            chain = self.probe(m["rest_host"], m["rest_port"], direct=True, alpn=None,
                               client=(m["ctl_cert_path"], m["ctl_key_path"]))["chain"]
        else:
            chain = self.probe(m["pg_host"], m["pg_port"])["chain"]
        return fingerprint(chain[0])

    def up_now(self) -> bool:
        return self.answers(lambda: self._served(rest=True))

    def materials(self) -> list[dict]:
        found = super().materials()
        found.append({"certificate_path": self.member["ctl_cert_path"], "key_path": self.member["ctl_key_path"],
                      "ca_path": self.p["ca_path"], "purpose": "client"})
        return found

    def reload(self, quiet: bool = False) -> None:
        m = self.member
        argv = [m["patronictl"], "-c", m["config_file"], "reload", "--force", m["scope"], m["member"]]
        if quiet:
            self.commands.run(argv, as_server=True)
        else:
            self.command(PATRONI_RELOAD, argv, as_server=True, status="changed")

    def wait_served(self) -> None:
        """Patroni reloads PostgreSQL at its next cycle, not when patronictl reload returns: a new certificate shows
        it; a reload for anything else (the CRL, a setting) is given one cycle (the cluster's loop_wait) first."""
        if self.wait_cycle:
            m = self.member
            try:
                seconds = m["loop_wait"](m["rest_host"], m["rest_port"], self.p["ca_path"],
                                         (m["ctl_cert_path"], m["ctl_key_path"]))
            except (OSError, ValueError):
                seconds = 10
            self.sleep(seconds + 1)
            self.step(PATRONI_CYCLE, seconds=seconds + 1)
        super().wait_served()

    def served(self) -> dict:
        return {"the REST API": self._served(rest=True), "PostgreSQL": self._served(rest=False)}

    def conninfo(self) -> str:
        return f"dbname=postgres user={self.p['server_user']}"

    def address(self) -> str:
        return f"host={self.member['pg_host']} port={self.member['pg_port']}"

    def prove(self) -> None:
        super().prove()
        m = self.member
        try:
            self.pending_restart = m["rest_client"](m["rest_host"], m["rest_port"], self.p["ca_path"],
                                                    (m["ctl_cert_path"], m["ctl_key_path"]))
        except (OSError, ValueError) as exc:
            raise StepFailed(PATRONI_REST, str(exc)) from None
        self.step(PATRONI_REST, state=self.pending_restart["state"])

    def fail(self, failure: StepFailed, running: bool) -> None:
        restored = self.member["restore"]()
        if running:
            self.reload(quiet=True)
        what = "Its previous configuration file was put back" if restored else \
            "Its configuration file was not changed by this run"
        what += "; Patroni was reloaded." if running else "; Patroni is not running."
        raise ActivationFailed(f"{self.label()}: {failure} {what}", failure.step, "")


ETCD_RESTART = "Restart etcd (it reads its environment file and its trusted CA file only when it starts)"
ETCD_REREAD = "No restart: etcd reads its certificate and key again at each handshake"
ETCD_WAIT = "Wait until etcd serves the new certificate to clients and peers"
ETCD_HEALTH = "etcd answers /health over mTLS (its own certificate as the client), verified by name"


class Etcd(Activation):
    """An etcd member (``etcd``: its client and peer addresses, the restart command, the health client). The file was
    written by pgtls.ssl.etcd_config; on failure it is put back (``etcd.restore``) and the member restarted again."""

    SERVICE = "etcd"
    WAIT = ETCD_WAIT
    PROVE = ETCD_HEALTH

    def __init__(self, params: dict, *args, **kwargs) -> None:
        super().__init__(params, *args, **kwargs)
        self.member = params["etcd"]
        self.restarted = False

    def label(self) -> str:
        return f"etcd member {self.member.get('name') or self.member['client'][0]}"

    def port(self) -> int:
        return self.member["client"][1]

    def _client(self) -> tuple[str, str]:
        return (self.p["cert_path"], self.p["key_path"])

    def _served(self, host: str, port: int) -> str:
        return fingerprint(self.probe(host, port, direct=True, alpn=None, client=self._client())["chain"][0])

    def up_now(self) -> bool:
        return self.answers(lambda: self._served(*self.member["client"]))

    def materials(self) -> list[dict]:
        found = super().materials()
        found.append(dict(found[0], purpose="client", hostnames=[]))
        return found

    def reload(self, quiet: bool = False) -> None:
        if self.restarted:  # putting the previous file back after a restart: restart again
            self.restart(quiet=True)
        elif not quiet:
            self.step(ETCD_REREAD)

    def restart(self, quiet: bool = False) -> None:
        argv = list(self.member["restart_command"])
        self.restarted = True
        if quiet:
            self.commands.run(argv, timeout=self.p["wait_seconds"] + 60)
        else:
            self.command(ETCD_RESTART, argv, status="changed", timeout=self.p["wait_seconds"] + 60)

    def served(self) -> dict:
        found = {"clients": self._served(*self.member["client"])}
        if self.member.get("peer"):
            found["peers"] = self._served(*self.member["peer"])
        return found

    def prove(self) -> None:
        """/health until it says true (a restarted member first finds its leader), wait_seconds in all."""
        host, port = self.member["client"]
        said = "nothing"
        for delay in backoff(self.p["wait_seconds"]) + [None]:
            try:
                said = self.member["health"](host, port, self.p["ca_path"], self._client())
                if said == "true":
                    self.step(ETCD_HEALTH)
                    return
                said = f"health {said}"
            except (OSError, ValueError) as exc:
                said = str(exc)
            if delay is not None:
                self.sleep(delay)
        raise StepFailed(ETCD_HEALTH, f"{host}:{port}/health: {said}")

    def healthy(self) -> list[dict]:
        """The proof alone (nothing to restart or wait for): a member that is not healthy stops the rolling run."""
        try:
            self.prove()
        except StepFailed as failure:
            self.step(failure.step, "failed")
            raise ActivationFailed(f"{self.label()}: {failure} Nothing was restarted.", failure.step, "") from None
        return self.steps

    def fail(self, failure: StepFailed, running: bool) -> None:
        restored = self.member["restore"]()
        if running and self.restarted:
            self.restart(quiet=True)
        what = "Its previous environment file was put back" if restored else \
            "Its environment file was not changed by this run"
        what += "; etcd was restarted with it." if running and self.restarted else "."
        raise ActivationFailed(f"{self.label()}: {failure} {what}", failure.step, "")


def activation_for(params: dict, **kwargs) -> Activation:
    """The service the parameters describe: PgBouncer when they name one, else a PostgreSQL cluster."""
    if params.get("pgbouncer"):
        return PgBouncer(params, **kwargs)
    for option in ("cluster", "settings_file"):
        if not params.get(option):
            raise PkiError("a PostgreSQL cluster's activation needs it (or activate.pgbouncer for PgBouncer)",
                           where=f"activate.{option}")
    return PostgreSQL(params, **kwargs)


def _read_file(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read(MAX_CRL_BYTES)


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()[-200000:]
    except OSError:
        return ""


def restore(folder: str | None, paths: list[str]) -> bool:
    """Put the snapshot's copies back and remove it (snapshot.restore); False when there is none."""
    return snapshot.restore(folder, paths)
