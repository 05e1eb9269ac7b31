"""psycopg 3 (libpq underneath) and asyncpg (its own TLS, Python's ssl) with a client certificate from pgtls.ssl.
Run with Debian's python3 (python3-psycopg, python3-asyncpg). Prints the session user and the serial of the client
certificate the server saw (pg_stat_ssl), or the error.
Usage: python3 pgtls_python.py psycopg|asyncpg HOST PORT USER DIR"""

from __future__ import annotations

import asyncio
import ssl
import sys

SQL = "select current_user || ' ' || client_serial from pg_stat_ssl where pid = pg_backend_pid()"


def psycopg_user(host, port, user, folder):
    import psycopg

    conninfo = (f"host={host} port={port} dbname=postgres user={user} sslmode=verify-full connect_timeout=10 "
                f"sslrootcert={folder}/root.crt sslcert={folder}/postgresql.crt sslkey={folder}/postgresql.key")
    with psycopg.connect(conninfo) as conn:
        return conn.execute(SQL).fetchone()[0]


def asyncpg_user(host, port, user, folder):
    import asyncpg

    context = ssl.create_default_context(cafile=f"{folder}/root.crt")  # verifies the chain and the host name
    context.load_cert_chain(f"{folder}/postgresql.crt", f"{folder}/postgresql.key")

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
