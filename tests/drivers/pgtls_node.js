// node-postgres (npm pg) with a client certificate from pgtls.ssl: the server's name checked (servername,
// rejectUnauthorized), the root as the only trust anchor, and DIR/root.crl when present (Node's crl option). Prints
// the session user and the serial of the client certificate the server saw (pg_stat_ssl), or the error.
// Usage: NODE_PATH=... node pgtls_node.js HOST PORT USER DIR
const fs = require("fs");
const { Client } = require("pg");

const [host, port, user, dir] = process.argv.slice(2);
const client = new Client({
  host, port: Number(port), user, database: "postgres", connectionTimeoutMillis: 10000,
  ssl: {
    ca: fs.readFileSync(`${dir}/root.crt`), cert: fs.readFileSync(`${dir}/postgresql.crt`),
    key: fs.readFileSync(`${dir}/postgresql.key`), rejectUnauthorized: true,
    // One entry per CRL: given the file as one string, Node reads its first CRL only ("unable to get certificate CRL").
    crl: fs.existsSync(`${dir}/root.crl`)
      ? fs.readFileSync(`${dir}/root.crl`, "utf8").match(/-----BEGIN X509 CRL-----[^-]+-----END X509 CRL-----/g)
      : undefined,
  },
});
client.connect()
  .then(() => client.query(
    "select current_user || ' ' || client_serial as seen from pg_stat_ssl where pid = pg_backend_pid()"))
  .then((res) => { console.log(res.rows[0].seen); return client.end(); })
  .catch((err) => { console.log(`FAILED ${err.code || ""} ${err.message}`); process.exit(1); });
