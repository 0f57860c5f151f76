/*
 * JdbcSinkCheck: runs Debezium's JDBC sink connector task on one producer's
 * records (DebeziumRunner's file, tidemark's file sink folder, or the topics
 * tidemark's Kafka sink wrote on a broker) into a PostgreSQL database, for
 * tests/compat/test_consumers.py to compare the tables it writes with the
 * source tables and with what the same sink made of Debezium's records.
 *
 * Invariants:
 *   1. Records reach the task as a Kafka Connect worker would hand them over:
 *      key and value bytes through JsonConverter.toConnectData
 *      (schemas.enable=true), one SinkRecord each, offsets counting per
 *      topic, in each topic's file order.  A record the converter rejects
 *      stops the run (exit 1), as it would stop the worker.
 *   2. The sink's settings are its documented ones for replaying a change
 *      stream: upsert, deletes on, primary key from the record key, tables
 *      created from the records' schemas (schema.evolution=basic).  The one
 *      other setting: Hibernate's DriverManager connection provider, since
 *      the default Agroal pool is not on Maven Central (see pom.xml).
 *   3. Only the topics named by --topics are written; a table without a
 *      primary key or a message topic has no place in a keyed upsert sink.
 *   4. Exit 0 once every record was offered to the sink; each record the
 *      sink failed on is a line {"topic","index","key","value","error"} in
 *      --out (key and value as their text), the way
 *      a worker with errors.tolerance=all sends it to a dead-letter queue.
 *   5. From Kafka: every partition of each topic from its first offset to the
 *      end offset it had when the run began, partitions one after another
 *      (each table's records are in one partition by key, so their order is
 *      kept); the index is the record's offset.
 *   6. One record per put(), so that a failure names its record; after a
 *      failure the task is stopped and a fresh one started (the task refuses
 *      every later put once one failed).
 *
 * Thread: single-threaded; the task is driven from main.
 */
package io.tidemark.compat;

import java.io.BufferedWriter;
import java.io.File;
import java.io.FileWriter;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.metrics.PluginMetrics;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.connect.data.SchemaAndValue;
import org.apache.kafka.connect.json.JsonConverter;
import org.apache.kafka.connect.sink.SinkRecord;
import org.apache.kafka.connect.sink.SinkTaskContext;

import com.fasterxml.jackson.databind.ObjectMapper;

import io.debezium.connector.jdbc.JdbcSinkConnectorTask;

public final class JdbcSinkCheck {
    private JdbcSinkCheck() {
    }

    private static String usage() {
        return "usage: JdbcSinkCheck (--debezium FILE.jsonl | --tidemark DIR | --kafka BOOTSTRAP)"
                + " --topics T1,T2,..."
                + " --url JDBC_URL --user U [--password PW] --out FAILURES.jsonl";
    }

    private static byte[] bytes(String s) {
        return s == null ? null : s.getBytes(StandardCharsets.UTF_8);
    }

    public static void main(String[] args) throws Exception {
        Map<String, String> a = new HashMap<>();
        for (int i = 0; i + 1 < args.length; i += 2) {
            a.put(args[i], args[i + 1]);
        }
        boolean input = a.containsKey("--debezium") || a.containsKey("--tidemark")
                || a.containsKey("--kafka");
        if (!input || !a.containsKey("--topics") || !a.containsKey("--url")
                || !a.containsKey("--user") || !a.containsKey("--out")) {
            System.err.println(usage());
            System.exit(2);
        }
        List<ConsumerCheck.Rec> recs = new ArrayList<>();
        Set<String> topics = new HashSet<>(Arrays.asList(a.get("--topics").split(",")));
        if (a.containsKey("--debezium")) {
            ConsumerCheck.readDebezium(new File(a.get("--debezium")), recs);
        } else if (a.containsKey("--tidemark")) {
            ConsumerCheck.readTidemark(new File(a.get("--tidemark")), recs);
        } else {
            readKafka(a.get("--kafka"), topics, recs);
        }

        JsonConverter keyConv = new JsonConverter();
        keyConv.configure(Map.of("schemas.enable", "true"), true);
        JsonConverter valueConv = new JsonConverter();
        valueConv.configure(Map.of("schemas.enable", "true"), false);

        Map<String, String> config = new LinkedHashMap<>();
        config.put("name", "tidemark-compat-jdbc");
        config.put("topics", a.get("--topics"));
        config.put("connection.url", a.get("--url"));
        config.put("connection.username", a.get("--user"));
        config.put("connection.password", a.getOrDefault("--password", ""));
        config.put("connection.provider", "org.hibernate.engine.jdbc.connections.internal."
                + "DriverManagerConnectionProviderImpl");
        config.put("insert.mode", "upsert");
        config.put("delete.enabled", "true");
        config.put("primary.key.mode", "record_key");
        config.put("schema.evolution", "basic");

        // Invariant 5: one record per put, a fresh task after a failed one.
        int put = 0;
        int failed = 0;
        ObjectMapper mapper = new ObjectMapper();
        Sink sink = null;
        try (BufferedWriter out = new BufferedWriter(
                new FileWriter(a.get("--out"), StandardCharsets.UTF_8))) {
            for (ConsumerCheck.Rec r : recs) {
                if (!topics.contains(r.topic())) {
                    continue;
                }
                SchemaAndValue k = keyConv.toConnectData(r.topic(), bytes(r.key()));
                SchemaAndValue v = valueConv.toConnectData(r.topic(), bytes(r.value()));
                SinkRecord rec = new SinkRecord(r.topic(), 0, k.schema(), k.value(), v.schema(),
                        v.value(), r.index());
                if (sink == null) {
                    sink = new Sink(config);
                }
                String error = sink.put(rec);
                put++;
                if (error != null) {
                    failed++;
                    sink.stop();
                    sink = null;
                    Map<String, Object> line = new LinkedHashMap<>();
                    line.put("topic", r.topic());
                    line.put("index", r.index());
                    line.put("key", r.key());
                    line.put("value", r.value());
                    line.put("error", error);
                    out.write(mapper.writeValueAsString(line));
                    out.write('\n');
                }
            }
        } finally {
            if (sink != null) {
                sink.stop();
            }
        }
        System.err.println("JdbcSinkCheck: put " + put + " records, " + failed + " failed");
        System.exit(0);
    }

    private static String text(byte[] b) {
        return b == null ? null : new String(b, StandardCharsets.UTF_8);
    }

    /** Invariant 5: the topics' records as they are on the broker now. */
    private static void readKafka(String bootstrap, Set<String> topics,
            List<ConsumerCheck.Rec> recs) {
        Properties p = new Properties();
        p.setProperty("bootstrap.servers", bootstrap);
        p.setProperty("enable.auto.commit", "false");
        p.setProperty("isolation.level", "read_committed");
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p, new ByteArrayDeserializer(),
                new ByteArrayDeserializer())) {
            for (String topic : topics) {
                List<PartitionInfo> infos = c.partitionsFor(topic, Duration.ofSeconds(30));
                if (infos == null) {
                    continue;
                }
                for (PartitionInfo info : infos) {
                    TopicPartition tp = new TopicPartition(topic, info.partition());
                    c.assign(List.of(tp));
                    c.seekToBeginning(List.of(tp));
                    long end = c.endOffsets(List.of(tp)).get(tp);
                    long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
                    while (c.position(tp) < end) {
                        if (System.nanoTime() > deadline) {
                            throw new IllegalStateException("cannot read " + tp + " to offset "
                                    + end);
                        }
                        for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(500))) {
                            if (r.offset() < end) {
                                recs.add(new ConsumerCheck.Rec("kafka", topic, (int) r.offset(),
                                        text(r.key()), text(r.value())));
                            }
                        }
                    }
                }
            }
        }
    }

    /** One JdbcSinkConnectorTask, started, with its partitions open. */
    private static final class Sink {
        private final JdbcSinkConnectorTask task = new JdbcSinkConnectorTask();
        private final Set<TopicPartition> partitions = new HashSet<>();

        Sink(Map<String, String> config) {
            for (String t : config.get("topics").split(",")) {
                partitions.add(new TopicPartition(t, 0));
            }
            task.initialize(new Context(config, partitions));
            task.start(config);
            task.open(partitions);
        }

        /**
         * Puts one record, which the task writes and commits before put returns
         * (it flushes its buffers at the end of every put); returns null, or the
         * error the task met, which it keeps rather than throws.
         */
        String put(SinkRecord rec) {
            try {
                task.put(List.of(rec));
                Throwable last = task.getLastProcessingException();
                return last == null ? null : chain(last);
            } catch (RuntimeException e) {
                return chain(e);
            }
        }

        void stop() {
            try {
                task.close(partitions);
                task.stop();
            } catch (RuntimeException e) {
                // A task that failed may fail to stop as well; its first error was reported.
            }
        }
    }

    /** The exception chain, class and message, for the report. */
    private static String chain(Throwable e) {
        StringBuilder sb = new StringBuilder();
        for (Throwable t = e; t != null; t = t.getCause() == t ? null : t.getCause()) {
            if (sb.length() > 0) {
                sb.append(" / caused by ");
            }
            sb.append(t.getClass().getName()).append(": ").append(t.getMessage());
        }
        return sb.toString();
    }

    /** The little of a worker's context the task asks for. */
    private static final class Context implements SinkTaskContext {
        private final Map<String, String> config;
        private final Set<TopicPartition> partitions;

        Context(Map<String, String> config, Set<TopicPartition> partitions) {
            this.config = config;
            this.partitions = partitions;
        }

        @Override
        public Map<String, String> configs() {
            return config;
        }

        @Override
        public void offset(Map<TopicPartition, Long> offsets) {
        }

        @Override
        public void offset(TopicPartition tp, long offset) {
        }

        @Override
        public void timeout(long timeoutMs) {
        }

        @Override
        public Set<TopicPartition> assignment() {
            return partitions;
        }

        @Override
        public void pause(TopicPartition... tps) {
        }

        @Override
        public void resume(TopicPartition... tps) {
        }

        @Override
        public void requestCommit() {
        }

        @Override
        public PluginMetrics pluginMetrics() {
            return null;
        }
    }
}
