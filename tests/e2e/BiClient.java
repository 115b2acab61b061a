// A BI tool's side of the Thrift endpoint, through the Hive JDBC driver that pyspark ships
// (hive-jdbc 2.3.10): the metadata calls and query shapes that Power BI, Tableau, DBeaver and
// Superset's JDBC/ODBC paths make. Run by tests/e2e/test_bi_clients.py with Java's source
// launcher: java -cp '<pyspark>/jars/*' BiClient.java <command> <jdbc-url> [args...]
//
// Output: one line per fact, fields separated by tabs, so the Python test can assert on each:
//   schema <name> | table <name> <type> | column <table> <name> <type> <remarks> | ...
// A failure prints "error <what> <message>" and exits 1: the test shows that line.

import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.Date;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Timestamp;
import java.util.ArrayList;
import java.util.List;

public final class BiClient {
    private BiClient() {}

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.out.println("error usage BiClient metadata|queries|sessions|hold <jdbc-url> [args]");
            System.exit(2);
        }
        String command = args[0];
        String url = args[1];
        Class.forName("org.apache.hive.jdbc.HiveDriver");
        try {
            switch (command) {
                case "metadata" -> metadata(url, args[2]);
                case "queries" -> queries(url, args[2]);
                case "sessions" -> sessions(url, Integer.parseInt(args[2]));
                case "hold" -> hold(url, args[2]);
                default -> {
                    System.out.println("error usage unknown command " + command);
                    System.exit(2);
                }
            }
        } catch (SQLException e) {
            System.out.println("error " + command + "\t" + oneLine(e.getMessage()));
            System.exit(1);
        }
    }

    private static String oneLine(String text) {
        return text == null ? "" : text.replace('\n', ' ').replace('\t', ' ').replace('\r', ' ');
    }

    private static void out(Object... fields) {
        StringBuilder line = new StringBuilder();
        for (int i = 0; i < fields.length; i++) {
            if (i > 0) {
                line.append('\t');
            }
            line.append(fields[i] == null ? "\\N" : oneLine(String.valueOf(fields[i])));
        }
        System.out.println(line);
    }

    /** What a BI tool's navigator asks: schemas, tables, columns, types, functions, keys. */
    private static void metadata(String url, String schema) throws SQLException {
        try (Connection connection = DriverManager.getConnection(url)) {
            DatabaseMetaData meta = connection.getMetaData();
            try (ResultSet rs = meta.getSchemas()) {
                while (rs.next()) {
                    out("schema", rs.getString("TABLE_SCHEM"));
                }
            }
            List<String> tables = new ArrayList<>();
            try (ResultSet rs = meta.getTables(null, schema, "%", null)) {
                while (rs.next()) {
                    tables.add(rs.getString("TABLE_NAME"));
                    out("table", rs.getString("TABLE_NAME"), rs.getString("TABLE_TYPE"));
                }
            }
            for (String table : tables) {
                try (ResultSet rs = meta.getColumns(null, schema, table, "%")) {
                    while (rs.next()) {
                        out("column", table, rs.getString("COLUMN_NAME"), rs.getString("TYPE_NAME"),
                            rs.getString("REMARKS"));
                    }
                }
                try (ResultSet rs = meta.getPrimaryKeys(null, schema, table)) {
                    int keys = 0;
                    while (rs.next()) {
                        keys++;
                    }
                    out("primary_keys", table, keys);
                }
            }
            try (ResultSet rs = meta.getTypeInfo()) {
                List<String> types = new ArrayList<>();
                while (rs.next()) {
                    types.add(rs.getString("TYPE_NAME"));
                }
                out("type_info", String.join(",", types));
            }
            try (ResultSet rs = meta.getFunctions(null, null, "%")) {
                int functions = 0;
                while (rs.next()) {
                    functions++;
                }
                out("functions", functions);
            }
        }
    }

    /** The query shapes BI tools generate, each printed with what came back; {@code quality} is the prepared parameter. */
    private static void queries(String url, String quality) throws SQLException {
        try (Connection connection = DriverManager.getConnection(url); Statement st = connection.createStatement()) {
            try (ResultSet rs = st.executeQuery("select * from gold.mart_daily_kpis limit 0")) {
                ResultSetMetaData md = rs.getMetaData();
                List<String> columns = new ArrayList<>();
                for (int i = 1; i <= md.getColumnCount(); i++) {
                    columns.add(md.getColumnName(i) + ":" + md.getColumnTypeName(i));
                }
                out("limit_0", rs.next() ? "rows" : "no rows", String.join(",", columns));
            }
            try (ResultSet rs = st.executeQuery(
                    "select min(activity_date), max(activity_date) from gold.mart_daily_kpis")) {
                rs.next();
                Date low = rs.getDate(1);
                Date high = rs.getDate(2);
                out("date_range", low, high);
            }
            try (ResultSet rs = st.executeQuery(
                    "select min(started_at), max(started_at), count(*) from gold.fct_viewing_sessions")) {
                rs.next();
                Timestamp low = rs.getTimestamp(1);
                Timestamp high = rs.getTimestamp(2);
                out("timestamp_range", low, high, rs.getLong(3));
            }
            try (ResultSet rs = st.executeQuery(
                    "select count(distinct user_id), count(distinct content_id) from gold.fct_viewing_sessions")) {
                rs.next();
                out("count_distinct", rs.getLong(1), rs.getLong(2));
            }
            try (ResultSet rs = st.executeQuery(
                    "select date_trunc('MONTH', started_at) as month_start, count(*) as sessions "
                    + "from gold.fct_viewing_sessions group by date_trunc('MONTH', started_at) order by 1")) {
                long months = 0;
                long sessions = 0;
                while (rs.next()) {
                    months++;
                    sessions += rs.getLong(2);
                }
                out("by_month", months, sessions);
            }
            String prepared = "select count(*) from gold.fct_viewing_sessions where streaming_quality = ?";
            try (PreparedStatement ps = connection.prepareStatement(prepared)) {
                ps.setString(1, quality);
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    out("prepared", quality, rs.getLong(1));
                }
            }
            try (ResultSet rs = st.executeQuery(
                    "select content_id, sum(watch_seconds) as watch_seconds from gold.fct_viewing_sessions "
                    + "group by content_id order by watch_seconds desc, content_id limit 10")) {
                List<String> top = new ArrayList<>();
                while (rs.next()) {
                    top.add(rs.getString(1) + "=" + rs.getLong(2));
                }
                out("top_10", String.join(",", top));
            }
            st.setFetchSize(10_000);
            try (ResultSet rs = st.executeQuery("select id, cast(id as string) as label from range(100000)")) {
                long rows = 0;
                long sum = 0;
                while (rs.next()) {
                    rows++;
                    sum += rs.getLong(1);
                    if (!rs.getString(2).equals(Long.toString(rs.getLong(1)))) {
                        throw new SQLException("row " + rows + ": label does not match id");
                    }
                }
                out("large_result", rows, sum);
            }
        }
    }

    /** Sessions opened and closed one after the other, each running a query. */
    private static void sessions(String url, int cycles) throws SQLException {
        for (int i = 0; i < cycles; i++) {
            try (Connection connection = DriverManager.getConnection(url); Statement st = connection.createStatement();
                 ResultSet rs = st.executeQuery("select " + i)) {
                rs.next();
                if (rs.getInt(1) != i) {
                    throw new SQLException("session " + i + " answered " + rs.getInt(1));
                }
            }
        }
        out("sessions", cycles);
    }

    /** Start a query and say so; the test kills this process while the query runs. */
    private static void hold(String url, String sql) throws SQLException {
        try (Connection connection = DriverManager.getConnection(url); Statement st = connection.createStatement()) {
            out("started");
            System.out.flush();
            try (ResultSet rs = st.executeQuery(sql)) {
                while (rs.next()) {
                    // read on: the test kills the process before the end
                }
            }
            out("finished");
        }
    }
}
