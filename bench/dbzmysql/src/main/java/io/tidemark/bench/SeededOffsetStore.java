/*
 * SeededOffsetStore: an in-memory offset store that starts with one offset,
 * so that DrainMariaDb's connector streams from a binlog position the bench
 * chose (the workload's first transaction), as tidemark's arm does.
 *
 * Invariants:
 *   1. The seed is Kafka Connect's own encoding of the offset (JsonConverter,
 *      schemas off, key [engine name, partition]), as the engine would have
 *      stored it after reaching that position itself.
 *   2. Without the system property bench.offset.file nothing is seeded: the
 *      store is Kafka Connect's MemoryOffsetBackingStore.
 *
 * Thread: the engine calls it from its own threads; the base class's
 * executor serialises get and set.
 */
package io.tidemark.bench;

import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

import org.apache.kafka.connect.json.JsonConverter;
import org.apache.kafka.connect.storage.MemoryOffsetBackingStore;

public final class SeededOffsetStore extends MemoryOffsetBackingStore {
    @Override
    public synchronized void start() {
        super.start();
        String file = System.getProperty("bench.offset.file");
        if (file == null) {
            return;
        }
        JsonConverter conv = new JsonConverter();
        conv.configure(Map.of("schemas.enable", "false"), false);
        String engine = System.getProperty("bench.engine.name");
        Map<String, Object> partition = Map.of("server", System.getProperty("bench.topic.prefix"));
        Map<String, Object> offset = new LinkedHashMap<>();
        offset.put("file", file);
        offset.put("pos", Long.parseLong(System.getProperty("bench.offset.pos")));
        byte[] k = conv.fromConnectData(engine, null, Arrays.asList(engine, partition));
        byte[] v = conv.fromConnectData(engine, null, offset);
        data.put(ByteBuffer.wrap(k), ByteBuffer.wrap(v));
    }

    @Override
    public Set<Map<String, Object>> connectorPartitions(String connectorName) {
        return new HashSet<>();
    }
}
