/*
 * ConsumerCheck: feeds every record that Debezium (DebeziumRunner's output)
 * and tidemark (the file sink's output) wrote to two real consumers, Kafka
 * Connect's JsonConverter.toConnectData and Flink's debezium-json
 * deserializer, and prints what each consumer made of it, for
 * tests/compat/test_consumers.py to pair and compare.
 *
 * Invariants:
 *   1. Each consumer gets the record's key and value as the exact bytes the
 *      producer wrote (cut out of the line by offset, never re-serialized), as
 *      a Kafka consumer would get them.
 *   2. Connect: JsonConverter with schemas.enable=true (the converter
 *      Debezium's records were written with), isKey true for the key.  Output:
 *      the decoded schema and value in a canonical form in which every
 *      primitive carries its Connect type ("int32:42", "bytes:<hex>",
 *      "decimal:1.50"), or the error.
 *   3. Flink: DebeziumJsonDeserializationSchema with schema-include=true and
 *      one RowType per topic, derived from the Connect schema of the `after`
 *      field of the first Debezium record of that topic (tidemark's, for a
 *      topic Debezium did not write), so both sides' records of one topic are
 *      decoded with the same declared table, as a Flink user declares it once.
 *      Output: every RowData emitted with its RowKind, or the error.
 *   4. An error is printed as its exception chain with the record's own text
 *      replaced by <value>, so that the same failure on both sides prints the
 *      same.
 *   5. One output line per input record, {"side","topic","index","connect",
 *      "flink"}, index counting the topic's records from 0 in file order.
 *
 * Thread: single-threaded.
 */
package io.tidemark.compat;

import java.io.BufferedWriter;
import java.io.File;
import java.io.FileWriter;
import java.math.BigDecimal;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.apache.flink.api.common.serialization.DeserializationSchema;
import org.apache.flink.formats.common.TimestampFormat;
import org.apache.flink.formats.json.debezium.DebeziumJsonDeserializationSchema;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.metrics.groups.UnregisteredMetricsGroup;
import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.data.ArrayData;
import org.apache.flink.table.data.MapData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.runtime.typeutils.InternalTypeInfo;
import org.apache.flink.table.types.DataType;
import org.apache.flink.table.types.logical.ArrayType;
import org.apache.flink.table.types.logical.LogicalType;
import org.apache.flink.table.types.logical.MapType;
import org.apache.flink.table.types.logical.RowType;
import org.apache.flink.table.types.utils.TypeConversions;
import org.apache.flink.util.Collector;
import org.apache.flink.util.SimpleUserCodeClassLoader;
import org.apache.flink.util.UserCodeClassLoader;
import org.apache.kafka.connect.data.Field;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.SchemaAndValue;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.json.JsonConverter;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.ObjectMapper;

public final class ConsumerCheck {
    private ConsumerCheck() {
    }

    /** One record as a producer wrote it: the exact text of key and value (null if null). */
    record Rec(String side, String topic, int index, String key, String value) {
    }

    private static final JsonFactory JSON = new JsonFactory();
    private static final ObjectMapper MAPPER = new ObjectMapper();

    private static String usage() {
        return "usage: ConsumerCheck --debezium FILE.jsonl --tidemark DIR --out FILE.jsonl";
    }

    public static void main(String[] args) throws Exception {
        Map<String, String> a = new LinkedHashMap<>();
        for (int i = 0; i + 1 < args.length; i += 2) {
            a.put(args[i], args[i + 1]);
        }
        for (String req : new String[] {"--debezium", "--tidemark", "--out"}) {
            if (!a.containsKey(req)) {
                System.err.println("missing " + req + "\n" + usage());
                System.exit(2);
            }
        }
        List<Rec> recs = new ArrayList<>();
        readDebezium(new File(a.get("--debezium")), recs);
        readTidemark(new File(a.get("--tidemark")), recs);

        JsonConverter keyConv = new JsonConverter();
        keyConv.configure(Map.of("schemas.enable", "true"), true);
        JsonConverter valueConv = new JsonConverter();
        valueConv.configure(Map.of("schemas.enable", "true"), false);

        // One Flink table per topic (invariant 3): Debezium's records come first in recs.
        Map<String, RowType> tables = new LinkedHashMap<>();
        for (Rec r : recs) {
            if (r.value() == null || tables.containsKey(r.topic())) {
                continue;
            }
            try {
                SchemaAndValue sv = valueConv.toConnectData(r.topic(), bytes(r.value()));
                Schema s = sv.schema();
                if (s != null && s.type() == Schema.Type.STRUCT && s.field("after") != null) {
                    DataType after = flinkType(s.field("after").schema());
                    tables.put(r.topic(), (RowType) after.getLogicalType());
                }
            } catch (RuntimeException e) {
                // Reported per record below.
            }
        }
        Map<String, DebeziumJsonDeserializationSchema> flink = new LinkedHashMap<>();

        int n = 0;
        FileWriter file = new FileWriter(a.get("--out"), StandardCharsets.UTF_8);
        try (BufferedWriter out = new BufferedWriter(file)) {
            for (Rec r : recs) {
                Map<String, Object> line = new LinkedHashMap<>();
                line.put("side", r.side());
                line.put("topic", r.topic());
                line.put("index", r.index());
                Map<String, Object> connect = new LinkedHashMap<>();
                connect.put("key", connect(keyConv, r.topic(), r.key()));
                connect.put("value", connect(valueConv, r.topic(), r.value()));
                line.put("connect", connect);
                RowType table = tables.get(r.topic());
                if (table == null) {
                    // A topic without row events (logical messages): Flink is given a
                    // one-column table, and must fail on the message as it does on Debezium's.
                    table = (RowType) DataTypes.ROW(DataTypes.FIELD("content", DataTypes.STRING()))
                            .getLogicalType();
                }
                DebeziumJsonDeserializationSchema des = flink.get(r.topic());
                if (des == null) {
                    des = flinkDeserializer(table);
                    flink.put(r.topic(), des);
                }
                line.put("flink_table", table.asSummaryString());
                line.put("flink", flink(des, table, r.value()));
                out.write(MAPPER.writeValueAsString(line));
                out.write('\n');
                n++;
            }
        }
        System.err.println("ConsumerCheck: " + n + " records, " + tables.size() + " Flink tables");
    }

    // -- reading -----------------------------------------------------------------

    private static byte[] bytes(String s) {
        return s == null ? null : s.getBytes(StandardCharsets.UTF_8);
    }

    /** The fields of one line, values as their exact text (invariant 1); JSON null as null. */
    private static Map<String, String> rawFields(String line) throws java.io.IOException {
        Map<String, String> f = new LinkedHashMap<>();
        try (JsonParser p = JSON.createParser(line)) {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                throw new java.io.IOException("not a JSON object: " + line);
            }
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String name = p.currentName();
                JsonToken t = p.nextToken();
                if (t == JsonToken.VALUE_NULL) {
                    f.put(name, null);
                } else if (name.equals("topic") && t == JsonToken.VALUE_STRING) {
                    f.put(name, p.getText());
                } else {
                    int start = (int) p.currentTokenLocation().getCharOffset();
                    p.skipChildren();
                    int end = (int) p.currentLocation().getCharOffset();
                    f.put(name, line.substring(start, end));
                }
            }
        }
        return f;
    }

    static void readDebezium(File file, List<Rec> recs) throws java.io.IOException {
        Map<String, Integer> counts = new LinkedHashMap<>();
        for (String line : Files.readAllLines(file.toPath(), StandardCharsets.UTF_8)) {
            if (line.isBlank()) {
                continue;
            }
            Map<String, String> f = rawFields(line);
            String topic = f.get("topic");
            int i = counts.merge(topic, 1, Integer::sum) - 1;
            recs.add(new Rec("debezium", topic, i, f.get("key"), f.get("value")));
        }
    }

    static void readTidemark(File dir, List<Rec> recs) throws java.io.IOException {
        File[] files = dir.listFiles((d, name) -> name.endsWith(".jsonl"));
        if (files == null) {
            throw new java.io.IOException("cannot list " + dir);
        }
        Arrays.sort(files);
        for (File file : files) {
            String topic = file.getName().substring(0, file.getName().length() - ".jsonl".length());
            int i = 0;
            for (String line : Files.readAllLines(file.toPath(), StandardCharsets.UTF_8)) {
                if (line.isBlank()) {
                    continue;
                }
                Map<String, String> f = rawFields(line);
                recs.add(new Rec("tidemark", topic, i++, f.get("key"), f.get("value")));
            }
        }
    }

    // -- errors --------------------------------------------------------------------

    /** Invariant 4: the exception chain, the input's own text replaced. */
    private static String error(Throwable e, String input) {
        StringBuilder sb = new StringBuilder();
        for (Throwable t = e; t != null; t = t.getCause() == t ? null : t.getCause()) {
            if (sb.length() > 0) {
                sb.append(" / caused by ");
            }
            String msg = t.getMessage() == null ? "" : t.getMessage();
            if (input != null) {
                msg = msg.replace(input, "<value>");
            }
            sb.append(t.getClass().getName()).append(": ").append(msg);
        }
        return sb.toString();
    }

    // -- Kafka Connect -------------------------------------------------------------

    private static Map<String, Object> connect(JsonConverter conv, String topic, String text) {
        Map<String, Object> res = new LinkedHashMap<>();
        try {
            SchemaAndValue sv = conv.toConnectData(topic, bytes(text));
            res.put("accepted", true);
            res.put("schema", sv.schema() == null ? null : schema(sv.schema()));
            res.put("value", value(sv.schema(), sv.value()));
        } catch (RuntimeException e) {
            res.put("accepted", false);
            res.put("error", error(e, text));
        }
        return res;
    }

    private static Map<String, Object> schema(Schema s) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("type", s.type().getName());
        m.put("optional", s.isOptional());
        m.put("name", s.name());
        m.put("version", s.version());
        m.put("doc", s.doc());
        m.put("parameters", s.parameters());
        m.put("default", s.defaultValue() == null ? null : value(s, s.defaultValue()));
        switch (s.type()) {
            case STRUCT:
                List<Object> fields = new ArrayList<>();
                for (Field f : s.fields()) {
                    fields.add(List.of(f.name(), schema(f.schema())));
                }
                m.put("fields", fields);
                break;
            case ARRAY:
                m.put("items", schema(s.valueSchema()));
                break;
            case MAP:
                m.put("keys", schema(s.keySchema()));
                m.put("values", schema(s.valueSchema()));
                break;
            default:
                break;
        }
        return m;
    }

    private static String hex(byte[] b) {
        StringBuilder sb = new StringBuilder(b.length * 2);
        for (byte x : b) {
            sb.append(String.format("%02x", x));
        }
        return sb.toString();
    }

    /** Invariant 2: a Connect value in canonical form, primitives tagged with their type. */
    private static Object value(Schema s, Object v) {
        if (v == null) {
            return null;
        }
        if (v instanceof Struct st) {
            Map<String, Object> m = new LinkedHashMap<>();
            for (Field f : st.schema().fields()) {
                m.put(f.name(), value(f.schema(), st.get(f)));
            }
            return m;
        }
        if (v instanceof List<?> l) {
            List<Object> out = new ArrayList<>();
            for (Object x : l) {
                out.add(value(s == null ? null : s.valueSchema(), x));
            }
            return out;
        }
        if (v instanceof Map<?, ?> mp) {
            List<Object> out = new ArrayList<>();
            for (Map.Entry<?, ?> e : mp.entrySet()) {
                out.add(Arrays.asList(value(s == null ? null : s.keySchema(), e.getKey()),
                        value(s == null ? null : s.valueSchema(), e.getValue())));
            }
            return out;
        }
        String type = s == null ? v.getClass().getSimpleName() : s.type().getName();
        if (v instanceof BigDecimal d) {
            return "decimal:" + d.toPlainString();
        }
        if (v instanceof byte[] b) {
            return type + ":" + hex(b);
        }
        if (v instanceof ByteBuffer bb) {
            byte[] b = new byte[bb.remaining()];
            bb.duplicate().get(b);
            return type + ":" + hex(b);
        }
        if (v instanceof java.util.Date d) {
            return (s != null && s.name() != null ? s.name() : "date") + ":" + d.getTime();
        }
        return type + ":" + v;
    }

    // -- Flink -----------------------------------------------------------------------

    /** Invariant 3: the Flink type that reads what JsonConverter writes for a Connect schema. */
    private static DataType flinkType(Schema s) {
        switch (s.type()) {
            case INT8:
                return DataTypes.TINYINT();
            case INT16:
                return DataTypes.SMALLINT();
            case INT32:
                return DataTypes.INT();
            case INT64:
                return DataTypes.BIGINT();
            case FLOAT32:
                return DataTypes.FLOAT();
            case FLOAT64:
                return DataTypes.DOUBLE();
            case BOOLEAN:
                return DataTypes.BOOLEAN();
            case STRING:
                return DataTypes.STRING();
            case BYTES:
                // Decimal (precise mode) and Bits included: base64 text, which Flink's
                // DECIMAL (a JSON number) cannot read; BYTES is what a Flink user declares.
                return DataTypes.BYTES();
            case ARRAY:
                return DataTypes.ARRAY(flinkType(s.valueSchema()));
            case MAP:
                return DataTypes.MAP(flinkType(s.keySchema()), flinkType(s.valueSchema()));
            case STRUCT:
                List<DataTypes.Field> fields = new ArrayList<>();
                for (Field f : s.fields()) {
                    fields.add(DataTypes.FIELD(f.name(), flinkType(f.schema())));
                }
                return DataTypes.ROW(fields.toArray(new DataTypes.Field[0]));
            default:
                throw new IllegalArgumentException("no Flink type for Connect type " + s.type());
        }
    }

    private static DebeziumJsonDeserializationSchema flinkDeserializer(RowType table)
            throws Exception {
        DataType physical = TypeConversions.fromLogicalToDataType(table);
        DebeziumJsonDeserializationSchema des = new DebeziumJsonDeserializationSchema(
                physical, List.of(), InternalTypeInfo.of(table), true /* schema-include */,
                false /* ignore-parse-errors */, TimestampFormat.ISO_8601);
        ClassLoader cl = ConsumerCheck.class.getClassLoader();
        des.open(new DeserializationSchema.InitializationContext() {
            @Override
            public MetricGroup getMetricGroup() {
                return new UnregisteredMetricsGroup();
            }

            @Override
            public UserCodeClassLoader getUserCodeClassLoader() {
                return SimpleUserCodeClassLoader.create(cl);
            }
        });
        return des;
    }

    private static Map<String, Object> flink(DebeziumJsonDeserializationSchema des, RowType table,
            String text) {
        Map<String, Object> res = new LinkedHashMap<>();
        List<Object> rows = new ArrayList<>();
        try {
            des.deserialize(bytes(text), new Collector<RowData>() {
                @Override
                public void collect(RowData row) {
                    Map<String, Object> m = new LinkedHashMap<>();
                    m.put("kind", row.getRowKind().shortString());
                    m.put("row", flinkValue(table, row));
                    rows.add(m);
                }

                @Override
                public void close() {
                }
            });
            res.put("accepted", true);
            res.put("rows", rows);
        } catch (Exception e) {
            res.put("accepted", false);
            res.put("error", error(e, text));
        }
        return res;
    }

    @SuppressWarnings("unchecked")
    private static Object flinkValue(LogicalType t, Object v) {
        if (v == null) {
            return null;
        }
        switch (t.getTypeRoot()) {
            case ROW: {
                RowType rt = (RowType) t;
                RowData row = (RowData) v;
                Map<String, Object> m = new LinkedHashMap<>();
                for (int i = 0; i < rt.getFieldCount(); i++) {
                    LogicalType ft = rt.getTypeAt(i);
                    m.put(rt.getFieldNames().get(i),
                            flinkValue(ft, RowData.createFieldGetter(ft, i).getFieldOrNull(row)));
                }
                return m;
            }
            case ARRAY: {
                LogicalType et = ((ArrayType) t).getElementType();
                ArrayData arr = (ArrayData) v;
                ArrayData.ElementGetter g = ArrayData.createElementGetter(et);
                List<Object> out = new ArrayList<>();
                for (int i = 0; i < arr.size(); i++) {
                    out.add(flinkValue(et, g.getElementOrNull(arr, i)));
                }
                return out;
            }
            case MAP: {
                MapType mt = (MapType) t;
                MapData md = (MapData) v;
                List<Object> keys = (List<Object>) flinkValue(new ArrayType(mt.getKeyType()),
                        md.keyArray());
                List<Object> vals = (List<Object>) flinkValue(new ArrayType(mt.getValueType()),
                        md.valueArray());
                List<Object> out = new ArrayList<>();
                for (int i = 0; i < keys.size(); i++) {
                    out.add(Arrays.asList(keys.get(i), vals.get(i)));
                }
                return out;
            }
            case BINARY:
            case VARBINARY:
                return t.getTypeRoot().name() + ":" + hex((byte[]) v);
            default:
                return t.getTypeRoot().name() + ":" + v;
        }
    }
}
