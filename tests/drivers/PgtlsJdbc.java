// The PostgreSQL JDBC driver with a client certificate from pgtls.ssl: sslmode=verify-full, the key as PKCS#8 DER
// (postgresql.pk8) or PKCS#12 (postgresql.p12 with its passphrase). Prints the session user and the serial of the
// client certificate the server saw (pg_stat_ssl), or the error.
// Usage: java -cp postgresql.jar PgtlsJdbc.java HOST PORT USER DIR [p12PASSPHRASE]
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.util.Properties;

public class PgtlsJdbc {
    public static void main(String[] args) throws Exception {
        String host = args[0], port = args[1], user = args[2], dir = args[3];
        Properties props = new Properties();
        props.setProperty("user", user);
        props.setProperty("sslmode", "verify-full");
        props.setProperty("sslrootcert", dir + "/root.crt");
        props.setProperty("sslcert", dir + "/postgresql.crt");
        if (args.length > 4) {
            props.setProperty("sslkey", dir + "/postgresql.p12");
            props.setProperty("sslpassword", args[4]);
        } else {
            props.setProperty("sslkey", dir + "/postgresql.pk8");
        }
        props.setProperty("connectTimeout", "10");
        try (Connection conn = DriverManager.getConnection("jdbc:postgresql://" + host + ":" + port + "/postgres", props);
             ResultSet rs = conn.createStatement().executeQuery(
                 "select current_user || ' ' || client_serial from pg_stat_ssl where pid = pg_backend_pid()")) {
            rs.next();
            System.out.println(rs.getString(1));
        } catch (Exception e) {
            Throwable t = e;
            StringBuilder why = new StringBuilder();
            while (t != null) {
                why.append(t.getClass().getSimpleName()).append(": ").append(t.getMessage()).append(" | ");
                t = t.getCause();
            }
            System.out.println("FAILED " + why);
            System.exit(1);
        }
    }
}
