/*
 * SqlRun — the Flink half of bench/sql_agg.py and bench/sql_join.py.
 *
 * Runs one SQL script in this JVM, in a local MiniCluster (what a Flink
 * application started from an IDE gets).  The drivers write the script: the
 * CREATE TABLE statements of the Kafka sources (Debezium JSON change events,
 * read from the earliest offset and bounded at the offsets that are latest
 * when the job starts, so that the job ends once it has read the data) and
 * of the sink, then one last statement:
 *
 *   - an INSERT INTO (the measured job): executed and awaited; then one JSON
 *     line on stdout with what was measured inside the JVM:
 *
 *       {"flink": "2.3.0", "parallelism": 1, "plan_cpu_s": .., "plan_wall_s": ..,
 *        "submit_cpu_s": .., "submit_wall_s": .., "job_cpu_s": .., "job_wall_s": ..,
 *        "cpu_s": .., "wall_s": ..}
 *
 *     plan_*: from main() to the INSERT (DDL, MiniCluster start); submit_*: the
 *     INSERT's executeSql (planning, code generation, submission); job_*: from
 *     the submission to the job's end; cpu_s / wall_s: from main() to the end.
 *     CPU is the whole process's (OperatingSystemMXBean.getProcessCpuTime:
 *     every thread, GC and JIT included).  The driver measures the process from
 *     outside too (getrusage of the child: CPU from exec, peak RSS).
 *
 *   - with --verify, a SELECT: its changelog is collected and folded into the
 *     final rows (+I/+U add a row, -U/-D take one away), which are printed as
 *     {"verify": [[field, ...], ...]} with every field as a string (or null):
 *     the driver compares them with what its generator left live.
 *
 * The script's statements end with a semicolon at the end of a line; lines
 * starting with "--" are comments.
 *
 * Arguments (all --name value):
 *   --script FILE           the statements
 *   --parallelism N         parallelism.default
 *   --conf KEY=VALUE        any Flink option (repeatable), e.g.
 *                           table.exec.mini-batch.enabled=true or
 *                           state.backend.type=rocksdb
 *   --verify                the last statement is a query to fold and print
 *
 * A failure prints its stack trace on stderr and exits 1.
 */
package io.tidemark.bench;

import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.apache.flink.configuration.Configuration;
import org.apache.flink.runtime.util.EnvironmentInformation;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.table.api.TableResult;
import org.apache.flink.types.Row;
import org.apache.flink.types.RowKind;

public final class SqlRun {
    private SqlRun() {}

    /** CPU seconds this process has used, all threads. */
    private static double cpuSeconds() {
        com.sun.management.OperatingSystemMXBean os =
                (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
        return os.getProcessCpuTime() / 1e9;
    }

    private static double wallSeconds() {
        return System.nanoTime() / 1e9;
    }

    /** The statements of a script: split at a semicolon that ends a line, comments dropped. */
    static List<String> statements(String text) {
        List<String> out = new ArrayList<>();
        StringBuilder cur = new StringBuilder();
        for (String line : text.split("\n", -1)) {
            String t = line.strip();
            if (t.startsWith("--")) {
                continue;
            }
            if (t.endsWith(";")) {
                cur.append(line, 0, line.lastIndexOf(';'));
                if (!cur.toString().isBlank()) {
                    out.add(cur.toString().strip());
                }
                cur.setLength(0);
            } else {
                cur.append(line).append('\n');
            }
        }
        if (!cur.toString().isBlank()) {
            out.add(cur.toString().strip());
        }
        return out;
    }

    /** A JSON string literal. */
    private static String json(Object o) {
        if (o == null) {
            return "null";
        }
        String s = o.toString();
        StringBuilder b = new StringBuilder("\"");
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '"' || c == '\\') {
                b.append('\\').append(c);
            } else if (c < 0x20) {
                b.append(String.format("\\u%04x", (int) c));
            } else {
                b.append(c);
            }
        }
        return b.append('"').toString();
    }

    /** Collects a query's changelog, folds it into its final rows and prints them. */
    private static void verify(TableEnvironment t, String query) throws Exception {
        TableResult r = t.executeSql(query);
        Map<String, Long> rows = new HashMap<>();
        try (org.apache.flink.util.CloseableIterator<Row> it = r.collect()) {
            while (it.hasNext()) {
                Row row = it.next();
                StringBuilder b = new StringBuilder("[");
                for (int i = 0; i < row.getArity(); i++) {
                    b.append(i == 0 ? "" : ", ").append(json(row.getField(i)));
                }
                String key = b.append(']').toString();
                RowKind k = row.getKind();
                long d = (k == RowKind.INSERT || k == RowKind.UPDATE_AFTER) ? 1 : -1;
                long n = rows.getOrDefault(key, 0L) + d;
                if (n == 0) {
                    rows.remove(key);
                } else {
                    rows.put(key, n);
                }
            }
        }
        StringBuilder out = new StringBuilder("{\"verify\": [");
        boolean first = true;
        for (Map.Entry<String, Long> e : rows.entrySet()) {
            if (e.getValue() < 0) {
                throw new IllegalStateException("the changelog retracts a row it never inserted: "
                        + e.getKey());
            }
            for (long i = 0; i < e.getValue(); i++) {
                out.append(first ? "" : ", ").append(e.getKey());
                first = false;
            }
        }
        System.out.println(out.append("]}"));
    }

    public static void main(String[] argv) throws Exception {
        double cpu0 = cpuSeconds();
        double wall0 = wallSeconds();

        String script = null;
        int parallelism = 1;
        boolean verify = false;
        Configuration conf = new Configuration();
        conf.setString("parallelism.default", "1");
        // No web UI, no metrics reporters: the MiniCluster runs the job and nothing else.
        conf.setString("rest.bind-port", "0");
        for (int i = 0; i < argv.length; i++) {
            String a = argv[i];
            if (a.equals("--verify")) {
                verify = true;
                continue;
            }
            if (i + 1 >= argv.length) {
                throw new IllegalArgumentException("option " + a + " needs a value");
            }
            String v = argv[++i];
            switch (a) {
                case "--script": script = v; break;
                case "--parallelism":
                    parallelism = Integer.parseInt(v);
                    conf.setString("parallelism.default", v);
                    break;
                case "--conf": {
                    int eq = v.indexOf('=');
                    if (eq <= 0) {
                        throw new IllegalArgumentException("--conf takes KEY=VALUE, not " + v);
                    }
                    conf.setString(v.substring(0, eq), v.substring(eq + 1));
                    break;
                }
                default: throw new IllegalArgumentException("unknown option " + a);
            }
        }
        if (script == null) {
            throw new IllegalArgumentException("--script is required");
        }
        List<String> stmts = statements(new String(Files.readAllBytes(Paths.get(script)),
                StandardCharsets.UTF_8));
        if (stmts.isEmpty()) {
            throw new IllegalArgumentException(script + " has no statement");
        }
        EnvironmentSettings settings =
                EnvironmentSettings.newInstance().inStreamingMode().withConfiguration(conf).build();
        TableEnvironment t = TableEnvironment.create(settings);
        for (String s : stmts.subList(0, stmts.size() - 1)) {
            t.executeSql(s);
        }
        String last = stmts.get(stmts.size() - 1);
        if (verify) {
            verify(t, last);
            System.out.flush();
            System.exit(0);
        }

        double cpu1 = cpuSeconds();
        double wall1 = wallSeconds();
        TableResult r = t.executeSql(last);
        double cpu2 = cpuSeconds();
        double wall2 = wallSeconds();
        r.await();
        double cpu3 = cpuSeconds();
        double wall3 = wallSeconds();

        System.out.printf(java.util.Locale.ROOT,
                "{\"flink\": \"%s\", \"parallelism\": %d, \"plan_cpu_s\": %.3f, \"plan_wall_s\": %.3f, "
                        + "\"submit_cpu_s\": %.3f, \"submit_wall_s\": %.3f, "
                        + "\"job_cpu_s\": %.3f, \"job_wall_s\": %.3f, \"cpu_s\": %.3f, \"wall_s\": %.3f}%n",
                EnvironmentInformation.getVersion(), parallelism, cpu1 - cpu0, wall1 - wall0,
                cpu2 - cpu1, wall2 - wall1, cpu3 - cpu2, wall3 - wall2, cpu3 - cpu0, wall3 - wall0);
        System.out.flush();
        // The MiniCluster's threads are not all daemons; end the process here.
        System.exit(0);
    }
}
