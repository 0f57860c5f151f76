/*
 * DebeziumRunner: runs Debezium's PostgreSQL connector in the embedded engine
 * and writes each record as Kafka Connect would put it on Kafka, for
 * tests/compat/test_compat.py to compare with tidemark's output.
 *
 * Invariants:
 *   1. Debezium's defaults everywhere except what the arguments name
 *      (connection, slot, publication, topic.prefix, snapshot.mode, and any
 *      --set key=value), so the
 *      output is what a user who installs the connector gets.
 *   2. Key and value are converted by Kafka Connect's own JsonConverter with
 *      schemas.enable=true, and written as its bytes, unparsed: number
 *      spelling and field order are JsonConverter's, not ours.
 *   3. One line per record, {"topic":T,"key":K,"value":V}, in the order the
 *      engine delivered them; a tombstone (null value) has "value":null.
 *   4. The program stops after --max records, or when no record came for
 *      --idle-ms after the first one (--start-timeout-ms before it), and exits
 *      1 if the engine failed.
 *
 * Thread: the engine's record handler writes the file; main waits.
 */
package io.tidemark.compat;

import java.io.BufferedWriter;
import java.io.FileWriter;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.kafka.connect.json.JsonConverter;
import org.apache.kafka.connect.source.SourceRecord;

import com.fasterxml.jackson.databind.ObjectMapper;

import io.debezium.embedded.Connect;
import io.debezium.engine.DebeziumEngine;
import io.debezium.engine.RecordChangeEvent;
import io.debezium.engine.format.ChangeEventFormat;

public final class DebeziumRunner {
    private DebeziumRunner() {
    }

    private static String usage() {
        return "usage: DebeziumRunner --host H --port P --user U [--password PW] --db DB --slot S"
                + " --publication PUB --prefix TOPIC_PREFIX --out FILE [--snapshot no_data|initial]"
                + " [--max N] [--idle-ms MS] [--start-timeout-ms MS] [--set key=value ...]";
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
        for (String req : new String[] {"--host", "--port", "--user", "--db", "--slot",
                "--publication", "--prefix", "--out"}) {
            if (!a.containsKey(req)) {
                System.err.println("missing " + req + "\n" + usage());
                System.exit(2);
            }
        }
        long max = Long.parseLong(a.getOrDefault("--max", "0"));
        long idleMs = Long.parseLong(a.getOrDefault("--idle-ms", "8000"));
        long startMs = Long.parseLong(a.getOrDefault("--start-timeout-ms", "120000"));

        Properties p = new Properties();
        p.setProperty("name", "tidemark-compat");
        p.setProperty("connector.class", "io.debezium.connector.postgresql.PostgresConnector");
        // Offsets only live as long as this run: every run starts at the slot.
        p.setProperty("offset.storage", "org.apache.kafka.connect.storage.MemoryOffsetBackingStore");
        p.setProperty("database.hostname", a.get("--host"));
        p.setProperty("database.port", a.get("--port"));
        p.setProperty("database.user", a.get("--user"));
        p.setProperty("database.password", a.getOrDefault("--password", ""));
        p.setProperty("database.dbname", a.get("--db"));
        p.setProperty("topic.prefix", a.get("--prefix"));
        p.setProperty("plugin.name", "pgoutput");
        p.setProperty("slot.name", a.get("--slot"));
        p.setProperty("publication.name", a.get("--publication"));
        p.setProperty("snapshot.mode", a.getOrDefault("--snapshot", "no_data"));
        p.putAll(extra);

        JsonConverter keyConverter = new JsonConverter();
        keyConverter.configure(Map.of("schemas.enable", "true"), true);
        JsonConverter valueConverter = new JsonConverter();
        valueConverter.configure(Map.of("schemas.enable", "true"), false);
        ObjectMapper mapper = new ObjectMapper();

        AtomicLong count = new AtomicLong();
        AtomicLong lastRecordNanos = new AtomicLong(0);
        AtomicReference<String> failure = new AtomicReference<>();
        Object done = new Object();

        BufferedWriter out = new BufferedWriter(new FileWriter(a.get("--out"), StandardCharsets.UTF_8));
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
                .notifying((RecordChangeEvent<SourceRecord> event) -> {
                    SourceRecord r = event.record();
                    byte[] k = keyConverter.fromConnectData(r.topic(), r.keySchema(), r.key());
                    byte[] v = valueConverter.fromConnectData(r.topic(), r.valueSchema(), r.value());
                    try {
                        synchronized (out) {
                            out.write("{\"topic\":" + mapper.writeValueAsString(r.topic())
                                    + ",\"key\":" + (k == null ? "null" : new String(k, StandardCharsets.UTF_8))
                                    + ",\"value\":" + (v == null ? "null" : new String(v, StandardCharsets.UTF_8))
                                    + "}\n");
                            out.flush();
                        }
                    } catch (java.io.IOException e) {
                        failure.compareAndSet(null, "cannot write " + a.get("--out") + ": " + e);
                    }
                    count.incrementAndGet();
                    lastRecordNanos.set(System.nanoTime());
                    synchronized (done) {
                        done.notifyAll();
                    }
                })
                .build();

        ExecutorService executor = Executors.newSingleThreadExecutor();
        executor.execute(engine);
        long started = System.nanoTime();
        String why;
        synchronized (done) {
            while (true) {
                long now = System.nanoTime();
                long last = lastRecordNanos.get();
                if (failure.get() != null) {
                    why = "engine failed: " + failure.get();
                    break;
                }
                if (max > 0 && count.get() >= max) {
                    why = "read " + count.get() + " records";
                    break;
                }
                if (last == 0 && now - started > TimeUnit.MILLISECONDS.toNanos(startMs)) {
                    why = "no record within " + startMs + " ms";
                    break;
                }
                if (last != 0 && now - last > TimeUnit.MILLISECONDS.toNanos(idleMs)) {
                    why = "idle for " + idleMs + " ms after " + count.get() + " records";
                    break;
                }
                done.wait(200);
            }
        }
        System.err.println("DebeziumRunner: stopping: " + why);
        try {
            engine.close();
        } catch (IllegalStateException e) {
            // The engine stopped by itself (a failure); nothing to close.
        }
        executor.shutdown();
        executor.awaitTermination(30, TimeUnit.SECONDS);
        synchronized (out) {
            out.close();
        }
        System.err.println("DebeziumRunner: wrote " + count.get() + " records");
        // The engine's threads must not keep the JVM alive.
        System.exit(failure.get() != null ? 1 : 0);
    }
}
