/*
 * SqlAgg — the Flink half of bench/sql_agg.py.
 *
 * Runs one Flink SQL job in this JVM (a local MiniCluster, as a Flink
 * application run from an IDE gets): a Kafka source of Debezium JSON change
 * events, read from the earliest offset and bounded at the offsets that are
 * latest when the job starts, so that the job ends once it has read the
 * data; the GROUP BY below; a blackhole sink (or a Kafka topic in
 * debezium-json).  Then prints one JSON line on stdout with what it measured
 * inside the JVM:
 *
 *   {"flink": "2.3.0", "parallelism": 1, "plan_cpu_s": .., "plan_wall_s": ..,
 *    "job_cpu_s": .., "job_wall_s": .., "cpu_s": .., "wall_s": ..}
 *
 * plan_*: from main() to the job's submission (DDL, planning, code
 * generation, MiniCluster start); job_*: from the submission to the job's
 * end; cpu_s / wall_s: from main() to the end.  CPU is the whole process's
 * (OperatingSystemMXBean.getProcessCpuTime: every thread, GC and JIT
 * included).  The driver measures the process from outside too (getrusage of
 * the child: CPU from exec, peak RSS).
 *
 * With --verify it runs a global aggregate instead (count(*), sum(amount),
 * count(DISTINCT customer_id) over the changelog), collects its final row and
 * prints it as {"verify": {"rows": .., "sum": "..", "groups": ..}}: the
 * driver compares it with what the generator wrote, which shows that Flink
 * decoded every event (inserts, updates with before images, deletes).
 *
 * Arguments (all --name value):
 *   --bootstrap HOST:PORT   --topic T   --parallelism N   --group-id G
 *   --sink blackhole|kafka  --out-topic T (with --sink kafka)
 *   --conf KEY=VALUE        any Flink option (repeatable), e.g.
 *                           table.exec.mini-batch.enabled=true
 *   --verify                the check described above
 *
 * A failure prints its stack trace on stderr and exits 1.
 */
package io.tidemark.bench;

import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.List;

import org.apache.flink.configuration.Configuration;
import org.apache.flink.runtime.util.EnvironmentInformation;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.table.api.TableResult;
import org.apache.flink.types.Row;
import org.apache.flink.types.RowKind;

public final class SqlAgg {
    private SqlAgg() {}

    /** CPU seconds this process has used, all threads. */
    private static double cpuSeconds() {
        com.sun.management.OperatingSystemMXBean os =
                (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
        return os.getProcessCpuTime() / 1e9;
    }

    private static double wallSeconds() {
        return System.nanoTime() / 1e9;
    }

    /** A SQL string literal: quotes doubled. */
    private static String lit(String s) {
        return "'" + s.replace("'", "''") + "'";
    }

    public static void main(String[] argv) throws Exception {
        double cpu0 = cpuSeconds();
        double wall0 = wallSeconds();

        String bootstrap = null;
        String topic = null;
        String groupId = "flink-sql-agg";
        String sink = "blackhole";
        String outTopic = null;
        int parallelism = 1;
        boolean verify = false;
        List<String[]> confs = new ArrayList<>();
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
                case "--bootstrap": bootstrap = v; break;
                case "--topic": topic = v; break;
                case "--group-id": groupId = v; break;
                case "--sink": sink = v; break;
                case "--out-topic": outTopic = v; break;
                case "--parallelism": parallelism = Integer.parseInt(v); break;
                case "--conf": {
                    int eq = v.indexOf('=');
                    if (eq <= 0) {
                        throw new IllegalArgumentException("--conf takes KEY=VALUE, not " + v);
                    }
                    confs.add(new String[] {v.substring(0, eq), v.substring(eq + 1)});
                    break;
                }
                default: throw new IllegalArgumentException("unknown option " + a);
            }
        }
        if (bootstrap == null || topic == null) {
            throw new IllegalArgumentException("--bootstrap and --topic are required");
        }
        if (sink.equals("kafka") && outTopic == null) {
            throw new IllegalArgumentException("--sink kafka needs --out-topic");
        }

        Configuration conf = new Configuration();
        conf.setString("parallelism.default", Integer.toString(parallelism));
        // No web UI, no metrics reporters: the MiniCluster runs the job and nothing else.
        conf.setString("rest.bind-port", "0");
        for (String[] kv : confs) {
            conf.setString(kv[0], kv[1]);
        }
        EnvironmentSettings settings =
                EnvironmentSettings.newInstance().inStreamingMode().withConfiguration(conf).build();
        TableEnvironment t = TableEnvironment.create(settings);

        // amount arrives as a JSON number (Debezium decimal.handling.mode=double,
        // written exactly with two decimals); DECIMAL(10,2) reads it exactly.
        t.executeSql("CREATE TABLE orders (\n"
                + "  id BIGINT,\n"
                + "  customer_id BIGINT,\n"
                + "  amount DECIMAL(10, 2),\n"
                + "  status STRING\n"
                + ") WITH (\n"
                + "  'connector' = 'kafka',\n"
                + "  'topic' = " + lit(topic) + ",\n"
                + "  'properties.bootstrap.servers' = " + lit(bootstrap) + ",\n"
                + "  'properties.group.id' = " + lit(groupId) + ",\n"
                + "  'scan.startup.mode' = 'earliest-offset',\n"
                + "  'scan.bounded.mode' = 'latest-offset',\n"
                + "  'format' = 'debezium-json'\n"
                + ")");

        if (verify) {
            TableResult r = t.executeSql("SELECT count(*), sum(amount), count(DISTINCT customer_id) "
                    + "FROM orders");
            Row last = null;
            try (org.apache.flink.util.CloseableIterator<Row> it = r.collect()) {
                while (it.hasNext()) {
                    Row row = it.next();
                    RowKind k = row.getKind();
                    if (k == RowKind.INSERT || k == RowKind.UPDATE_AFTER) {
                        last = row;
                    } else {
                        last = null; // -U/-D: the row before is retracted
                    }
                }
            }
            if (last == null) {
                System.out.println("{\"verify\": {\"rows\": 0, \"sum\": null, \"groups\": 0}}");
            } else {
                System.out.println("{\"verify\": {\"rows\": " + last.getField(0) + ", \"sum\": \""
                        + last.getField(1) + "\", \"groups\": " + last.getField(2) + "}}");
            }
            return;
        }

        String sinkWith;
        if (sink.equals("blackhole")) {
            sinkWith = "'connector' = 'blackhole'";
        } else if (sink.equals("kafka")) {
            // The changelog (-U/+U) as Debezium JSON: -U becomes a 'd' event, +U a 'c'.
            sinkWith = "'connector' = 'kafka', 'topic' = " + lit(outTopic)
                    + ", 'properties.bootstrap.servers' = " + lit(bootstrap)
                    + ", 'format' = 'debezium-json'";
        } else {
            throw new IllegalArgumentException("--sink is blackhole or kafka, not " + sink);
        }
        // The result types Flink derives for the aggregates: sum of DECIMAL(10,2) is
        // DECIMAL(38,2), avg DECIMAL(38,6).
        t.executeSql("CREATE TABLE out_agg (\n"
                + "  customer_id BIGINT,\n"
                + "  cnt BIGINT,\n"
                + "  total DECIMAL(38, 2),\n"
                + "  lo DECIMAL(10, 2),\n"
                + "  hi DECIMAL(10, 2),\n"
                + "  mean DECIMAL(38, 6)\n"
                + ") WITH (" + sinkWith + ")");

        double cpu1 = cpuSeconds();
        double wall1 = wallSeconds();
        TableResult r = t.executeSql("INSERT INTO out_agg SELECT customer_id, count(*), sum(amount), "
                + "min(amount), max(amount), avg(amount) FROM orders GROUP BY customer_id");
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
