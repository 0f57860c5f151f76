/*
 * DrainMariaDb: the Debezium arm of bench/mysql_drain.py.  Runs Debezium's
 * MySQL connector (the MariaDB one is not on Maven Central at 3.6.1) in the
 * embedded engine from the first binlog of a throwaway MariaDB, writes every
 * change event's value as Kafka Connect's JsonConverter (schemas.enable as
 * --schemas says, true by default) would put it on Kafka, one line per event, into a file, and says when it
 * has written --events of them.
 *
 * Invariants:
 *   1. Debezium's defaults everywhere except what a drain needs: connection,
 *      server id, topic prefix, the one database, an in-memory offset store
 *      seeded with --file/--pos (SeededOffsetStore: stream from there, as
 *      tidemark's snapshot = 'never' resuming from a position does),
 *      snapshot.mode=recovery (the schema history, in memory, is built from
 *      the server's table definitions, no rows are read), and
 *      tombstones.on.delete=false so that one row change is one line in both
 *      arms.
 *   2. The line is JsonConverter's bytes, unparsed, written through one
 *      BufferedOutputStream; the file is flushed when --events lines are
 *      written, before "DONE <n> <ms>" goes to stdout.
 *   3. After DONE the program waits for stdin to close (the bench reads its
 *      CPU time and peak RSS first), then exits.
 *
 * Thread: the engine's record handler writes the file; main waits.
 */
package io.tidemark.bench;

import java.io.BufferedOutputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.kafka.connect.json.JsonConverter;
import org.apache.kafka.connect.source.SourceRecord;

import io.debezium.embedded.Connect;
import io.debezium.engine.DebeziumEngine;
import io.debezium.engine.RecordChangeEvent;
import io.debezium.engine.format.ChangeEventFormat;

public final class DrainMariaDb {
    private DrainMariaDb() {
    }

    public static void main(String[] args) throws Exception {
        Map<String, String> a = new HashMap<>();
        Properties extra = new Properties();
        for (int i = 0; i + 1 < args.length; i += 2) {
            if (args[i].equals("--set")) {
                String[] kv = args[i + 1].split("=", 2);
                extra.setProperty(kv[0], kv.length > 1 ? kv[1] : "");
            } else {
                a.put(args[i], args[i + 1]);
            }
        }
        for (String req : new String[] {"--host", "--port", "--user", "--db", "--out", "--events", "--file",
                "--pos"}) {
            if (!a.containsKey(req)) {
                System.err.println("missing " + req + "; usage: DrainMariaDb --host H --port P --user U"
                        + " [--password PW] --db DB --file BINLOG --pos N --out FILE --events N"
                        + " [--set key=value ...]");
                System.exit(2);
            }
        }
        final long events = Long.parseLong(a.get("--events"));
        final long t0 = System.nanoTime();

        Properties p = new Properties();
        p.setProperty("name", "tidemark-bench");
        p.setProperty("connector.class", "io.debezium.connector.mysql.MySqlConnector");
        // Streams from --file/--pos (SeededOffsetStore), with the schema read from the server
        // at start (snapshot.mode = recovery: no rows, only the tables' definitions).
        System.setProperty("bench.engine.name", "tidemark-bench");
        System.setProperty("bench.topic.prefix", "bench");
        System.setProperty("bench.offset.file", a.get("--file"));
        System.setProperty("bench.offset.pos", a.get("--pos"));
        p.setProperty("offset.storage", SeededOffsetStore.class.getName());
        p.setProperty("offset.flush.interval.ms", "60000");
        p.setProperty("schema.history.internal", "io.debezium.relational.history.MemorySchemaHistory");
        p.setProperty("database.hostname", a.get("--host"));
        p.setProperty("database.port", a.get("--port"));
        p.setProperty("database.user", a.get("--user"));
        p.setProperty("database.password", a.getOrDefault("--password", ""));
        p.setProperty("database.jdbc.driver", "org.mariadb.jdbc.Driver");
        p.setProperty("database.protocol", "jdbc:mariadb");
        p.setProperty("database.ssl.mode", "disabled");
        p.setProperty("database.server.id", a.getOrDefault("--server-id", "5402"));
        p.setProperty("database.include.list", a.get("--db"));
        p.setProperty("topic.prefix", "bench");
        p.setProperty("snapshot.mode", "recovery");
        p.setProperty("tombstones.on.delete", "false");
        p.putAll(extra);

        JsonConverter valueConverter = new JsonConverter();
        valueConverter.configure(Map.of("schemas.enable", a.getOrDefault("--schemas", "true")), false);

        AtomicLong count = new AtomicLong();
        AtomicReference<String> failure = new AtomicReference<>();
        Object done = new Object();
        OutputStream out = new BufferedOutputStream(new FileOutputStream(a.get("--out")), 1 << 20);

        DebeziumEngine<RecordChangeEvent<SourceRecord>> engine = DebeziumEngine
                .create(ChangeEventFormat.of(Connect.class))
                .using(p)
                .using((success, message, error) -> {
                    if (!success) {
                        failure.set(message + (error != null ? ": " + error : ""));
                    }
                    synchronized (done) {
                        done.notifyAll();
                    }
                })
                .notifying((List<RecordChangeEvent<SourceRecord>> records,
                            DebeziumEngine.RecordCommitter<RecordChangeEvent<SourceRecord>> committer) -> {
                    for (RecordChangeEvent<SourceRecord> event : records) {
                        SourceRecord r = event.record();
                        if (r.value() != null && r.topic().startsWith("bench." + a.get("--db") + ".")) {
                            byte[] v = valueConverter.fromConnectData(r.topic(), r.valueSchema(), r.value());
                            try {
                                out.write(v);
                                out.write('\n');
                            } catch (IOException e) {
                                failure.compareAndSet(null, "cannot write " + a.get("--out") + ": " + e);
                            }
                            if (count.incrementAndGet() == events) {
                                try {
                                    out.flush();
                                } catch (IOException e) {
                                    failure.compareAndSet(null, "cannot flush: " + e);
                                }
                                synchronized (done) {
                                    done.notifyAll();
                                }
                            }
                        }
                        committer.markProcessed(event);
                    }
                    committer.markBatchFinished();
                })
                .build();

        ExecutorService executor = Executors.newSingleThreadExecutor();
        executor.execute(engine);
        synchronized (done) {
            while (failure.get() == null && count.get() < events) {
                done.wait(200);
            }
        }
        if (failure.get() != null) {
            System.err.println("DrainMariaDb: engine failed after " + count.get() + " events: "
                    + failure.get());
            System.exit(1);
        }
        System.out.println("DONE " + count.get() + " " + (System.nanoTime() - t0) / 1000000);
        System.out.flush();
        // The bench reads CPU time and peak RSS now; it closes stdin when done.
        while (System.in.read() >= 0) {
            // Nothing to read: wait for end of file.
        }
        out.close();
        System.exit(0);
    }
}
