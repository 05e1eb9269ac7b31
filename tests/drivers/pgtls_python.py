"""psycopg 3 (libpq underneath) and asyncpg (its own TLS, Python's ssl) with a client certificate from pgtls.ssl.
Run with Debian's python3 (python3-psycopg, python3-asyncpg). With a root.crl in DIR, both check the server's chain
against it. Prints the session user and the serial of the client certificate the server saw (pg_stat_ssl), or the
error.
Usage: python3 pgtls_python.py psycopg|asyncpg HOST PORT USER DIR"""

from __future__ import annotations

import asyncio
import os
import ssl
import sys

SQL = "select current_user || ' ' || client_serial from pg_stat_ssl where pid = pg_backend_pid()"


def crl_of(folder):
    """The folder's root.crl (the client role writes it with pgtls_client_crl), if it has one."""
    return f"{folder}/root.crl" if os.path.exists(f"{folder}/root.crl") else None


def psycopg_user(host, port, user, folder):
    import psycopg

    conninfo = (f"host={host} port={port} dbname=postgres user={user} sslmode=verify-full connect_timeout=10 "
                f"sslrootcert={folder}/root.crt sslcert={folder}/postgresql.crt sslkey={folder}/postgresql.key")
    if crl_of(folder):
        conninfo += f" sslcrl={crl_of(folder)}"
    with psycopg.connect(conninfo) as conn:
        return conn.execute(SQL).fetchone()[0]


def asyncpg_user(host, port, user, folder):
    import asyncpg

    context = ssl.create_default_context(cafile=f"{folder}/root.crt")  # verifies the chain and the host name
    context.load_cert_chain(f"{folder}/postgresql.crt", f"{folder}/postgresql.key")
    if crl_of(folder):  # every CA of the chain checked, as libpq does (one CRL per CA in the file)
        context.load_verify_locations(cafile=crl_of(folder))
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_CHAIN

    async def run():
        conn = await asyncpg.connect(host=host, port=int(port), user=user, database="postgres", ssl=context,
                                     timeout=10)
        try:
            return await conn.fetchval(SQL)
        finally:
            await conn.close()

    return asyncio.run(run())


if __name__ == "__main__":
    driver, *rest = sys.argv[1:]
    try:
        print({"psycopg": psycopg_user, "asyncpg": asyncpg_user}[driver](*rest))
    except Exception as exc:  # the test reads the reason
        print(f"FAILED {type(exc).__name__}: {exc}")
        sys.exit(1)
