/*
 * NexmarkRun — runs one Flink SQL script in this JVM (a local MiniCluster) for
 * bench/nexmark/nexmark.py and prints one JSON line of what it measured:
 *
 *   {"flink": "2.3.0", "parallelism": P, "job_cpu_s": .., "job_wall_s": ..,
 *    "cpu_s": .., "wall_s": ..}
 *
 * The last statement is an INSERT, or a SELECT, which then goes into a blackhole
 * table made from its schema.  job_*: from the INSERT's executeSql (planning, submission) to the job's end;
 * cpu_s / wall_s: from main() on.  CPU is the whole process's
 * (OperatingSystemMXBean.getProcessCpuTime: every thread, GC and JIT).
 *
 * With --verify the last statement is a SELECT whose changelog is folded into
 * its final rows, printed as {"verify": [[field, ...], ...]} (strings): the
 * generator sanity check compares them with tidemark's.
 *
 * Statements end with a semicolon at the end of a line; "--" lines are comments.
 * Arguments: --script FILE, --parallelism N, --conf KEY=VALUE (repeatable), --verify.
 */
package io.tidemark.nexmark;

import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import org.apache.flink.configuration.Configuration;
import org.apache.flink.runtime.util.EnvironmentInformation;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.Schema;
import org.apache.flink.table.api.Table;
import org.apache.flink.table.api.TableDescriptor;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.table.api.TableResult;
import org.apache.flink.types.Row;
import org.apache.flink.types.RowKind;
import org.apache.flink.util.CloseableIterator;

public final class NexmarkRun {
    private NexmarkRun() {}

    private static double cpuSeconds() {
        com.sun.management.OperatingSystemMXBean os = (com.sun.management.OperatingSystemMXBean)
                ManagementFactory.getOperatingSystemMXBean();
        return os.getProcessCpuTime() / 1e9;
    }

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

    public static void main(String[] args) throws Exception {
        double cpu0 = cpuSeconds(), wall0 = System.nanoTime() / 1e9;
        String script = null;
        int parallelism = 1;
        boolean verify = false;
        Configuration conf = new Configuration();
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--script" -> script = args[++i];
                case "--parallelism" -> parallelism = Integer.parseInt(args[++i]);
                case "--verify" -> verify = true;
                case "--conf" -> {
                    String kv = args[++i];
                    int eq = kv.indexOf('=');
                    conf.setString(kv.substring(0, eq), kv.substring(eq + 1));
                }
                default -> throw new IllegalArgumentException("unknown argument " + args[i]);
            }
        }
        conf.setString("parallelism.default", Integer.toString(parallelism));
        EnvironmentSettings settings =
                EnvironmentSettings.newInstance().inStreamingMode().withConfiguration(conf).build();
        TableEnvironment t = TableEnvironment.create(settings);
        List<String> stmts = statements(
                new String(Files.readAllBytes(Paths.get(script)), StandardCharsets.UTF_8));
        for (int i = 0; i < stmts.size() - 1; i++) {
            t.executeSql(stmts.get(i));
        }
        String last = stmts.get(stmts.size() - 1);
        if (verify) {
            Map<String, Long> rows = new TreeMap<>();
            TableResult r = t.executeSql(last);
            try (CloseableIterator<Row> it = r.collect()) {
                while (it.hasNext()) {
                    Row row = it.next();
                    StringBuilder b = new StringBuilder("[");
                    for (int k = 0; k < row.getArity(); k++) {
                        b.append(k == 0 ? "" : ", ").append(json(row.getField(k)));
                    }
                    String key = b.append(']').toString();
                    RowKind kind = row.getKind();
                    long d = kind == RowKind.INSERT || kind == RowKind.UPDATE_AFTER ? 1 : -1;
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
                for (long k = 0; k < e.getValue(); k++) {
                    out.append(first ? "" : ", ").append(e.getKey());
                    first = false;
                }
            }
            System.out.println(out.append("]}"));
            System.exit(0);
        }
        double cpu1 = cpuSeconds(), wall1 = System.nanoTime() / 1e9;
        if (last.regionMatches(true, 0, "SELECT", 0, 6)) {
            // A bare query goes into a blackhole table made from its own schema.
            Table q = t.sqlQuery(last);
            t.createTemporaryTable("nexmark_out", TableDescriptor.forConnector("blackhole")
                    .schema(Schema.newBuilder().fromResolvedSchema(q.getResolvedSchema()).build())
                    .build());
            q.executeInsert("nexmark_out").await();
        } else {
            t.executeSql(last).await();
        }
        double cpu2 = cpuSeconds(), wall2 = System.nanoTime() / 1e9;
        System.out.printf(java.util.Locale.ROOT,
                "{\"flink\": \"%s\", \"parallelism\": %d, \"job_cpu_s\": %.3f, \"job_wall_s\": %.3f,"
                        + " \"cpu_s\": %.3f, \"wall_s\": %.3f}%n",
                EnvironmentInformation.getVersion(), parallelism, cpu2 - cpu1, wall2 - wall1,
                cpu2 - cpu0, wall2 - wall0);
        System.exit(0);
    }
}
