# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""Find the PostgreSQL clusters of a host, and each cluster's program folder, without Perl or JSON.pm.

Debian (postgresql-common): every cluster is a folder /etc/postgresql/<version>/<name> holding postgresql.conf;
its data directory is ``data_directory`` there (or the ``pgdata`` link), its port ``port`` (5432 by default), its
log the ``log`` link or /var/log/postgresql/postgresql-<version>-<name>.log. That is what ``pg_lsclusters`` reads
too, but ``pg_lsclusters --json`` needs JSON.pm (libjson-perl), which Debian 11 only suggests.
Data-dir layouts (PGDG, RHEL, hand-made): PG_VERSION and postgresql.conf inside PGDATA.

The program folder (``bin_dir``) of a cluster: the running postmaster's own executable (/proc/<pid>/exe), else
``pg_config --bindir`` when it reports this major version, else the layout's default folder for the version.
"""

from __future__ import annotations

import glob
import grp
import os
import platform
import re
import shutil
import socket

try:
    from cryptography.hazmat.primitives import serialization
except ImportError:  # deps.py keeps the error; modules fail with it through deps.require_cryptography()
    from ..core.deps import MISSING

    serialization = MISSING

from ..core import compat
from ..core.errors import PkiError
from ..core.files import read_bytes

_SETTING = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(?:=\s*|\s+)(.*?)\s*$")
# Programs the role runs from a cluster's bin_dir.
PROGRAMS = ("pg_ctl", "initdb", "postgres")


def _value(raw: str) -> str:
    """A postgresql.conf value: quoted ('' escapes a quote) or bare; a trailing comment removed."""
    raw = raw.strip()
    if raw.startswith("'"):
        out, i = [], 1
        while i < len(raw):
            ch = raw[i]
            if ch == "'" and raw[i + 1:i + 2] == "'":
                out.append("'")
                i += 2
                continue
            if ch == "'":
                break
            if ch == "\\" and i + 1 < len(raw):
                out.append(raw[i + 1])
                i += 2
                continue
            out.append(ch)
            i += 1
        return "".join(out)
    return raw.split("#", 1)[0].strip()


def read_conf(path: str, settings: dict | None = None, depth: int = 0) -> dict:
    """Settings of a postgresql.conf, following include, include_if_exists and include_dir in order (the last
    value of a name wins, as in PostgreSQL). Names are lower-cased."""
    settings = {} if settings is None else settings
    if depth > 10:
        raise PkiError("includes nested more than 10 deep", where=path)
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        raise PkiError(f"cannot read: {exc.strerror}", where=path) from None
    base = os.path.dirname(path)
    for line in lines:
        if line.lstrip().startswith("#"):
            continue
        match = _SETTING.match(line)
        if not match:
            continue
        name, value = match.group(1).lower(), _value(match.group(2))
        if name in ("include", "include_if_exists", "include_dir"):
            target = value if os.path.isabs(value) else os.path.join(base, value)
            if name == "include_dir":
                if os.path.isdir(target):
                    for entry in sorted(os.listdir(target)):
                        if entry.endswith(".conf") and not entry.startswith("."):
                            read_conf(os.path.join(target, entry), settings, depth + 1)
            elif name == "include" or os.path.exists(target):
                read_conf(target, settings, depth + 1)
            continue
        settings[name] = value
    return settings


def postmaster_pid(data_dir: str, proc: str = "/proc") -> int | None:
    """The pid in postmaster.pid when that process is alive, else None."""
    try:
        with open(os.path.join(data_dir, "postmaster.pid"), encoding="utf-8") as handle:
            pid = int(handle.readline().strip())
    except (OSError, ValueError):
        return None
    return pid if os.path.exists(os.path.join(proc, str(pid))) else None


def bin_dir(version: int, pid: int | None, default: str, pg_config: str | None = None, proc: str = "/proc",
            run_command=None) -> tuple[str, str]:
    """``(folder, how it was found)`` of a cluster's programs. ``run_command`` is the module's (needed with
    ``pg_config``)."""
    if pid is not None:
        exe = _executable(pid, proc)
        if exe:
            return os.path.dirname(exe), f"the running postmaster (pid {pid})"
    if pg_config:
        rc, out, _err = run_command(["timeout", "10", pg_config, "--bindir", "--version"], expand_user_and_vars=False)
        if rc == 0:
            lines = out.split("\n")
            folder, ver = lines[0].strip(), (lines[1] if len(lines) > 1 else "")
            match = re.search(r"PostgreSQL\)?\s+(\d+)", ver)
            if folder and match and int(match.group(1)) == int(version):
                return folder, pg_config + " --bindir"
    return default.replace("{version}", str(version)), "the layout's default"


def _executable(pid: int, proc: str) -> str:
    """The postmaster's program: /proc/<pid>/exe, or where that link is not readable (root without
    CAP_SYS_PTRACE, as in a container, cannot read another user's) the absolute argv[0] that pg_ctl and systemd
    start it with (the postmaster keeps its command line)."""
    try:
        exe = os.readlink(os.path.join(proc, str(pid), "exe"))
        if exe.endswith(" (deleted)"):
            exe = exe[:-len(" (deleted)")]
        if os.path.isabs(exe):
            return exe
    except OSError:
        pass
    try:
        with open(os.path.join(proc, str(pid), "cmdline"), "rb") as handle:
            argv0 = handle.read().split(b"\0", 1)[0].decode("utf-8", "replace")
    except OSError:
        return ""
    return argv0 if os.path.isabs(argv0) else ""


def missing_programs(folder: str, programs=PROGRAMS) -> list[str]:
    """Paths of the programs that are not executable files in ``folder``."""
    return [p for p in (os.path.join(folder, name) for name in programs)
            if not (os.path.isfile(p) and os.access(p, os.X_OK))]


def debian_clusters(etc: str = "/etc/postgresql", proc: str = "/proc") -> list[dict]:
    """The clusters postgresql-common knows, read from ``etc`` (what pg_lsclusters reads)."""
    found = []
    for conf in sorted(glob.glob(os.path.join(etc, "*", "*", "postgresql.conf")),
                       key=lambda p: (_int(p.split(os.sep)[-3]), p.split(os.sep)[-2])):
        config_dir = os.path.dirname(conf)
        name, version = config_dir.split(os.sep)[-1], config_dir.split(os.sep)[-2]
        if not version.isdigit() and not re.fullmatch(r"\d+\.\d+", version):
            continue
        settings = read_conf(conf)
        data_dir = settings.get("data_directory") or _link(os.path.join(config_dir, "pgdata")) \
            or f"/var/lib/postgresql/{version}/{name}"
        log_file = _link(os.path.join(config_dir, "log")) or f"/var/log/postgresql/postgresql-{version}-{name}.log"
        pid = postmaster_pid(data_dir, proc)
        found.append({
            "version": _int(version), "name": name, "port": _port(settings, conf),
            "config_dir": config_dir, "data_dir": data_dir, "service": f"postgresql@{version}-{name}",
            "log_file": log_file, "running": pid is not None, "pid": pid,
            "socket_dir": _socket_dir(settings),
        })
    return found


def datadir_clusters(patterns: list[str], proc: str = "/proc") -> list[dict]:
    """Data directories with the configuration inside (PGDG: /var/lib/pgsql/<version>/data, unit
    postgresql-<version>; the distribution's /var/lib/pgsql/data, unit postgresql)."""
    found = []
    for pattern in patterns:
        for data_dir in sorted(glob.glob(pattern)):
            try:
                with open(os.path.join(data_dir, "PG_VERSION"), encoding="utf-8") as handle:
                    version = _int(handle.read().strip().split(".")[0])
            except (OSError, PkiError):
                continue
            settings = {}
            for name in ("postgresql.conf", "postgresql.auto.conf"):
                if os.path.exists(os.path.join(data_dir, name)):
                    settings = read_conf(os.path.join(data_dir, name), settings)
            service = f"postgresql-{version}" if data_dir.rstrip("/").endswith(f"/{version}/data") else "postgresql"
            pid = postmaster_pid(data_dir, proc)
            found.append({
                "version": version, "name": service, "port": _port(settings, os.path.join(data_dir, "postgresql.conf")),
                "config_dir": data_dir, "data_dir": data_dir, "service": service, "log_file": "",
                "running": pid is not None, "pid": pid, "socket_dir": _socket_dir(settings),
            })
    return found


def parse_lsclusters(text: str) -> list[dict]:
    """``pg_lsclusters`` plain output (``--no-header`` or with its header) as dicts: version, name, port, status,
    owner, data_dir, log_file. Only for comparison: discovery reads /etc/postgresql itself."""
    rows = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 6 or not fields[0].replace(".", "").isdigit():
            continue  # the header, blank lines
        rows.append({"version": _int(fields[0]), "name": fields[1], "port": _int(fields[2]),
                     "status": fields[3], "owner": fields[4], "data_dir": fields[5],
                     "log_file": fields[6] if len(fields) > 6 and fields[6] != "<unknown>" else ""})
    return rows


def describe(given: list[dict], layout: str, bin_default: str, datadir_globs: list[str],
             etc: str = "/etc/postgresql", proc: str = "/proc", pg_config: str | None = "pg_config",
             run_command=None) -> list[dict]:
    """The clusters to manage: ``given`` (pgtls_clusters, completed) or, when empty, the discovered ones; each with
    ``bin_dir``, ``bin_dir_source``, ``missing_programs`` and ``managed_by``."""
    if given:
        clusters = []
        for index, entry in enumerate(given):
            cluster = dict(entry)
            for field in ("version", "name", "port", "config_dir", "data_dir"):
                if cluster.get(field) in (None, ""):
                    raise PkiError(f"{field} is missing", where=f"pgtls_clusters[{index}]")
            cluster["version"] = _int(cluster["version"], f"pgtls_clusters[{index}].version")
            cluster.setdefault("pid", postmaster_pid(cluster["data_dir"], proc))
            clusters.append(cluster)
    elif layout == "debian":
        clusters = debian_clusters(etc, proc)
    elif layout == "datadir":
        clusters = datadir_clusters(datadir_globs, proc)
    else:
        raise PkiError(f"unknown layout {layout!r}")
    if pg_config and not os.path.isabs(pg_config):
        pg_config = next((os.path.join(d, pg_config) for d in os.environ.get("PATH", "").split(os.pathsep)
                          if d and os.access(os.path.join(d, pg_config), os.X_OK)), None)
    for cluster in clusters:
        if cluster.get("bin_dir"):
            cluster["bin_dir_source"] = "pgtls_clusters"
        else:
            cluster["bin_dir"], cluster["bin_dir_source"] = bin_dir(
                cluster["version"], cluster.get("pid"), bin_default, pg_config, proc, run_command)
        cluster["missing_programs"] = missing_programs(cluster["bin_dir"])
        cluster["managed_by"] = managed_by(cluster["config_dir"])
    return clusters


# The first lines of every file Patroni writes (postgresql.conf, and pg_hba.conf when postgresql.pg_hba is set):
# patroni/postgresql/config.py, ConfigWriter, the same in Patroni 3 and 4.
PATRONI_HEADER = b"# Do not edit this file manually!\n# It will be overwritten by Patroni!"


def managed_by(config_dir: str) -> str | None:
    """``patroni`` when Patroni writes the cluster's postgresql.conf (its header), else None."""
    try:
        with open(os.path.join(config_dir, "postgresql.conf"), "rb") as handle:
            start = handle.read(len(PATRONI_HEADER))
    except OSError:
        return None
    return "patroni" if start == PATRONI_HEADER else None


def _socket_dir(settings: dict) -> str:
    dirs = settings.get("unix_socket_directories", "")
    first = dirs.split(",")[0].strip() if dirs else ""
    return first if first.startswith("/") else ""


def _link(path: str) -> str:
    return os.path.realpath(path) if os.path.islink(path) else ""


def _int(value, where: str | None = None) -> int:
    try:
        return int(str(value).strip().split(".", maxsplit=1)[0])
    except ValueError:
        raise PkiError(f"{str(value)[:40]!r} is not a number", where=where) from None


def _port(settings: dict, conf: str) -> int:
    """The port setting of a configuration (5432 when unset), named with its file when it is not a port."""
    port = _int(settings.get("port", "5432"), f"port in {conf}")
    if not 1 <= port <= 65535:
        raise PkiError(f"{port} is not a port number (1-65535)", where=f"port in {conf}")
    return port


def ready_code(cluster: dict, run_command) -> int:
    """pg_isready's answer for a cluster (no login needed): 0 accepts connections, 1 starting or stopping, 2 no
    answer (coreutils' timeout's 124 too); asked on the cluster's socket, then on 127.0.0.1. -1 when there is no
    pg_isready. ``run_command`` is the module's."""
    own = os.path.join(cluster.get("bin_dir") or "", "pg_isready")
    program = own if os.access(own, os.X_OK) else shutil.which("pg_isready")
    if not program:
        return -1
    code = 2
    # The cluster's socket folder (libpq's default when unknown), then 127.0.0.1.
    targets = [["-h", cluster["socket_dir"]] if cluster.get("socket_dir") else [], ["-h", "127.0.0.1"]]
    for index, host in enumerate(targets):
        args = ["timeout", "15", program, "-q", "-t", "5", "-p", str(cluster["port"]), *host]
        answer = run_command(args, expand_user_and_vars=False)[0]
        if answer not in (0, 1, 2, 3):
            answer = 2  # 124: no answer in 15 s; 126, 127: pg_isready could not run
        if index == 0 or answer == 0:
            code = answer
        if code == 0:
            break
    return code


def with_state(clusters: list[dict], run_command) -> list[dict]:
    """Each cluster with ``running`` and ``ready_code`` from pg_isready (no pg_isready: discovery's ``running``)."""
    out = []
    for cluster in clusters:
        code = ready_code(cluster, run_command)
        running = {0: True, 1: False, 2: False}.get(code, cluster.get("running", True))
        out.append(dict(cluster, running=bool(running), ready_code=code))
    return out


def read_trust_file(clusters: list[dict], relative: str) -> list[dict]:
    """Each cluster with ``trusted_root``: the certificates of ``<config_dir>/<relative>`` (a root.crt) as PEM, or
    None when it is missing or holds none. Only certificates ever leave the host: a file holding a private key is
    refused (naming it, never showing it)."""
    if os.path.isabs(relative) or ".." in relative.split("/"):
        raise PkiError(f"{relative!r} must be a path inside the configuration folder", where="trust_file")
    out = []
    for cluster in clusters:
        path = os.path.join(cluster["config_dir"], relative)
        data = read_bytes(path, "trust_file", missing_ok=True, nofollow=True)
        text = None
        if data is not None:
            if b"PRIVATE KEY-----" in data:
                raise PkiError(f"{path} holds a private key: trust_file names the root certificate a cluster trusts "
                               "(root.crt); a key is never read back", where="trust_file")
            try:
                certs = compat.load_certificates(data, f"trust_file ({path})")
            except PkiError:
                certs = []  # damaged or empty: it trusts nothing (the role replaces it)
            text = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs) or None
        out.append(dict(cluster, trusted_root=text))
    return out


def postmaster_groups(pid: int, proc: str = "/proc") -> set[int] | None:
    """The supplementary groups of a running process (the ``Groups:`` line of /proc/<pid>/status)."""
    try:
        with open(os.path.join(proc, str(pid), "status"), encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("Groups:"):
                    return {int(g) for g in line.split()[1:]}
    except (OSError, ValueError):
        return None
    return set()


def with_key_group(clusters: list[dict], group: str, proc: str = "/proc") -> list[dict]:
    """Each cluster with ``key_group_member``: whether its running postmaster is in ``group`` (a group that does
    not exist yet: false), or None when no postmaster runs. Joining a group reaches a server only by a restart."""
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        gid = None
    out = []
    for cluster in clusters:
        pid = cluster.get("pid") or postmaster_pid(cluster["data_dir"], proc)
        groups = postmaster_groups(pid, proc) if pid else None
        member = None if groups is None else (gid is not None and gid in groups)
        out.append(dict(cluster, pid=pid, key_group_member=member))
    return out


# What the OS family decides when the task does not (the server role's per-family defaults).
OS_DEFAULTS_FIELDS = ("layout", "bin_dir_default", "datadir_globs", "key_group")
FALLBACKS = {"layout": "debian", "bin_dir_default": "/usr/lib/postgresql/{version}/bin", "datadir_globs": []}


# ansible.builtin.setup's OS families (its OS_FAMILY_MAP), keyed by the os-release ID of each distribution.
_FAMILIES = {
    "RedHat": ("rhel", "redhat", "fedora", "centos", "scientific", "slc", "ascendos", "cloudlinux", "psbm", "ol",
               "oraclelinux", "ovs", "oel", "amzn", "amazon", "virtuozzo", "xenserver", "alinux", "euleros",
               "openeuler", "almalinux", "rocky", "tencentos", "eurolinux", "kylin", "miraclelinux"),
    "Debian": ("debian", "ubuntu", "raspbian", "neon", "linuxmint", "steamos", "devuan", "kali", "cumulus-linux",
               "pop", "parrot", "pardus", "uos", "deepin", "osmc"),
    "Suse": ("sles", "sled", "opensuse", "opensuse-leap", "opensuse-tumbleweed", "opensuse-microos", "sles_sap",
             "suse_linux", "alp-dolomite", "sl-micro"),
    "Archlinux": ("arch", "archlinux", "antergos", "manjaro"),
    "Mandrake": ("mandrake", "mandriva"),
    "Slackware": ("slackware",),
    "Altlinux": ("altlinux",),
    "Gentoo": ("gentoo", "funtoo"),
    "Alpine": ("alpine",),
    "ClearLinux": ("clear-linux-os",),
}
_FAMILY_OF = {name: family for family, names in _FAMILIES.items() for name in names}
OS_RELEASE = ("/etc/os-release", "/usr/lib/os-release")


def os_family(paths: tuple = OS_RELEASE) -> str | None:
    """The host's OS family as setup names it (``ansible_facts.os_family``), from os-release without gathering
    facts (setup's own collector would add ~0.2 s and half the module's payload to every run): its ``ID``, else the
    first of its ``ID_LIKE`` that is a known family's (a derivative takes its parent's family), else the ``ID``
    capitalised as setup does for a distribution it does not know. None without a readable os-release."""
    for path in paths:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                text = handle.read()
        except OSError:
            continue
        fields = {}
        for line in text.splitlines():
            key, sep, value = line.strip().partition("=")
            if sep and key in ("ID", "ID_LIKE"):
                fields[key] = value.strip().strip("\"'").lower()
        distribution = fields.get("ID", "")
        for name in [distribution] + fields.get("ID_LIKE", "").split():
            if name in _FAMILY_OF:
                return _FAMILY_OF[name]
        return distribution.capitalize() or None
    return None


def host_names() -> dict:
    """The host's names as setup's platform facts give them (``hostname``, ``fqdn``): the certificates' names,
    without gathering facts."""
    node = platform.node()
    return {"hostname": node.split(".")[0], "nodename": node, "fqdn": socket.getfqdn()}


def nothing_found(chosen: dict, etc: str = "/etc/postgresql") -> str:
    """Why a host with no cluster fails (require_clusters), naming where discovery looked."""
    if chosen["layout"] == "debian":
        looked = f"layout debian: no {etc}/<version>/<name>/postgresql.conf"
    else:
        looked = f"layout datadir: no PG_VERSION in {', '.join(chosen['datadir_globs'] or []) or 'no datadir_globs'}"
    return (f"no PostgreSQL cluster found on this host ({looked}): create one, or describe it in clusters (the server "
            "role's pgtls_clusters: version, name, port, config_dir, data_dir, service)")


def resolve_defaults(params: dict, family: str | None, os_defaults: dict | None) -> dict:
    """``layout``, ``bin_dir_default``, ``datadir_globs`` and ``key_group``: given in the task, else from the
    host's OS family's entry of ``os_defaults``, else the module's fallbacks. When ``os_defaults`` has no entry for
    this family, discovery would guess where PostgreSQL lives: an error naming the family, unless ``clusters`` are
    given (then only the program folder's and the key group's fallbacks apply)."""
    entry = {}
    if os_defaults:
        if family in os_defaults:
            entry = os_defaults[family] or {}
        elif not params.get("clusters"):
            raise PkiError(f"no entry for this host's OS family {family!r} (known: {', '.join(sorted(os_defaults))}); "
                           "describe the clusters instead (clusters, the server role's pgtls_clusters)",
                           where="os_defaults")
    out = {}
    for field in OS_DEFAULTS_FIELDS:
        value = params.get(field)
        if value in (None, "") and entry.get(field) not in (None, ""):
            value = entry[field]
        out[field] = FALLBACKS.get(field) if value in (None, "") else value
    return out
