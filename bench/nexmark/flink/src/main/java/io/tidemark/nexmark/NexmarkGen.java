/*
 * NexmarkGen — the Nexmark generator of connectors/datagen/nexmark.c, in Java.
 *
 * A line-for-line port: the same SplitMix64 stream seeded by (seed, event id),
 * the same draws in the same order, the same integer arithmetic (Java's long
 * wraps as C's uint64_t does; unsigned shifts where C shifts unsigned), so
 * event n is bit for bit the event tidemark's datagen source makes.  Any change
 * to nexmark.c must be made here too; bench/nexmark/nexmark.py prints a sanity
 * line (counts and sums over all three tables from both engines) that shows a
 * difference.
 *
 * Only the standard in-order stream is needed by the bench (out_of_order_group
 * = 1): the factory refuses other group sizes.
 */
package io.tidemark.nexmark;

import java.io.Serializable;

public final class NexmarkGen implements Serializable {
    private static final long serialVersionUID = 1L;

    public static final int PERSON = 0, AUCTION = 1, BID = 2;

    private static final String[] FIRST_NAMES = {"Peter", "Paul", "Luke", "John", "Saul", "Vicky",
        "Kate", "Julie", "Sarah", "Deiter", "Walter"};
    private static final String[] LAST_NAMES = {"Shultz", "Abrams", "Spencer", "White", "Bartels",
        "Walton", "Smith", "Jones", "Noris"};
    private static final String[] CITIES = {"Phoenix", "Los Angeles", "San Francisco", "Boise",
        "Portland", "Bend", "Redmond", "Seattle", "Kent", "Cheyenne"};
    private static final String[] STATES = {"AZ", "CA", "ID", "OR", "WA", "WY"};
    private static final String[] HOT_CHANNELS = {"Google", "Facebook", "Baidu", "Apple"};
    private static final String[] HOT_URLS = {
        "https://www.nexmark.com/googl/item.htm?query=1",
        "https://www.nexmark.com/faceb/item.htm?query=1",
        "https://www.nexmark.com/baidu/item.htm?query=1",
        "https://www.nexmark.com/apple/item.htm?query=1"};

    /* Configuration (nexmark.h, tm_nexmark_cfg_t), with the same defaults. */
    public long seed = 0;
    public long baseTimeMs = 1735689600000L;
    public long firstEventRate = 10000;
    public int personProportion = 1, auctionProportion = 3, bidProportion = 46;
    public int hotAuctionRatio = 2, hotSellersRatio = 4, hotBiddersRatio = 4;
    public int numInFlightAuctions = 100, numActivePeople = 1000;
    public int avgPersonBytes = 200, avgAuctionBytes = 500, avgBidBytes = 100;

    /** One event; reused by the caller. */
    public static final class Event {
        public int kind;
        public long n, id, dateTimeMs;
        public long personId;
        public String name, email, creditCard, city, state;
        public long auctionId, initialBid, reserve, expiresMs, seller, category;
        public String itemName, description;
        public long auction, bidder, price;
        public String channel, url;
        public String extra;
    }

    /* ---- the random stream ---- */

    private long s;

    private void seed(long key) {
        s = seed * 0xD1B54A32D192ED03L + key * 0x9E3779B97F4A7C15L;
    }

    private long next() {
        long z = (s += 0x9E3779B97F4A7C15L);
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    private int nextInt(int bound) {
        return (int) (((next() >>> 32) * (long) bound) >>> 32);
    }

    private long nextLong(long n) {
        if (n < 0x7FFFFFFFL) {
            return nextInt((int) n);
        }
        return (next() >>> 1) % n;
    }

    private double nextDouble() {
        return (double) (next() >>> 11) * 0x1.0p-53;
    }

    /* ---- ids and times ---- */

    private long total() {
        return (long) personProportion + auctionProportion + bidProportion;
    }

    public int kindOf(long id) {
        long rem = id % total();
        if (rem < personProportion) {
            return PERSON;
        }
        if (rem < personProportion + auctionProportion) {
            return AUCTION;
        }
        return BID;
    }

    public long timeMs(long id) {
        double delayUs = 1000000.0 / (double) firstEventRate;
        return baseTimeMs + (long) ((double) id * delayUs) / 1000;
    }

    public long lastPerson(long id) {
        long t = total();
        long epoch = id / t, offset = id % t;
        if (offset >= personProportion) {
            offset = personProportion - 1;
        }
        return epoch * personProportion + offset;
    }

    public long lastAuction(long id) {
        long t = total();
        long epoch = id / t, offset = id % t;
        if (offset < personProportion) {
            epoch--;
            offset = auctionProportion - 1;
        } else if (offset >= personProportion + auctionProportion) {
            offset = auctionProportion - 1;
        } else {
            offset -= personProportion;
        }
        return epoch * auctionProportion + offset;
    }

    /** Events of `kind` among the first `events` (in order): the k-th one's event number. */
    public long numberOf(int kind, long k) {
        int lo = kind == PERSON ? 0 : kind == AUCTION ? personProportion
                : personProportion + auctionProportion;
        int cnt = kind == PERSON ? personProportion : kind == AUCTION ? auctionProportion
                : bidProportion;
        return (k / cnt) * total() + lo + k % cnt;
    }

    /** How many events of `kind` are among the first `events`. */
    public long countOf(int kind, long events) {
        int lo = kind == PERSON ? 0 : kind == AUCTION ? personProportion
                : personProportion + auctionProportion;
        int cnt = kind == PERSON ? personProportion : kind == AUCTION ? auctionProportion
                : bidProportion;
        long full = events / total(), rem = events % total();
        return full * cnt + Math.max(0, Math.min(rem - lo, cnt));
    }

    private long nextPerson(long id) {
        long people = lastPerson(id) + 1;
        long active = Math.min(people, numActivePeople);
        return people - active + nextLong(active + 10);
    }

    private long nextAuctionId(long id) {
        long maxa = lastAuction(id);
        long mina = Math.max(maxa - numInFlightAuctions, 0);
        return mina + nextLong(maxa - mina + 1 + 10);
    }

    private long nextPrice() {
        return (long) Math.floor(Math.pow(10.0, nextDouble() * 6.0) * 100.0 + 0.5);
    }

    private final StringBuilder sb = new StringBuilder(256);

    private String nextString(int max) {
        int len = 3 + nextInt(max - 3);
        sb.setLength(0);
        for (int i = 0; i < len; i++) {
            sb.append(nextInt(13) == 0 ? ' ' : (char) ('a' + nextInt(26)));
        }
        return sb.toString().strip();
    }

    private String nextExtra(long current, long avg) {
        long size = 0;
        if (current <= avg) {
            long want = avg - current;
            long delta = (long) Math.floor((double) want * 0.2 + 0.5);
            size = want - delta + (delta == 0 ? 0 : nextInt((int) (2 * delta)));
        }
        sb.setLength(0);
        long bits = 0;
        int left = 0;
        for (long i = 0; i < size; i++) {
            if (left == 0) {
                bits = next() >>> 33;
                left = 6;
            }
            sb.append((char) ('a' + bits % 26));
            bits /= 26;
            left--;
        }
        return sb.toString();
    }

    private static void pad4(StringBuilder b, int v) {
        if (v < 1000) {
            b.append('0');
        }
        if (v < 100) {
            b.append('0');
        }
        if (v < 10) {
            b.append('0');
        }
        b.append(v);
    }

    /** Fills e with event number n (in order: id = n). */
    public void generate(long n, Event e) {
        e.n = n;
        e.id = n;
        e.kind = kindOf(n);
        e.dateTimeMs = timeMs(n);
        seed(n);
        if (e.kind == PERSON) {
            e.personId = lastPerson(n) + 1000;
            String first = FIRST_NAMES[nextInt(FIRST_NAMES.length)];
            e.name = first + " " + LAST_NAMES[nextInt(LAST_NAMES.length)];
            String a = nextString(7), b = nextString(5);
            e.email = a + "@" + b + ".com";
            StringBuilder cc = new StringBuilder(19);
            for (int i = 0; i < 4; i++) {
                if (i > 0) {
                    cc.append(' ');
                }
                pad4(cc, nextInt(10000));
            }
            e.creditCard = cc.toString();
            e.city = CITIES[nextInt(CITIES.length)];
            e.state = STATES[nextInt(STATES.length)];
            long cur = 8 + e.name.length() + e.email.length() + e.creditCard.length()
                    + e.city.length() + e.state.length();
            e.extra = nextExtra(cur, avgPersonBytes);
        } else if (e.kind == AUCTION) {
            e.auctionId = lastAuction(n) + 1000;
            long seller = nextInt(hotSellersRatio) > 0 ? (lastPerson(n) / 100) * 100 : nextPerson(n);
            e.seller = seller + 1000;
            e.category = 10 + nextInt(5);
            e.initialBid = nextPrice();
            long ahead = ((long) numInFlightAuctions * total()) / auctionProportion;
            long horizon = timeMs(n + ahead) - e.dateTimeMs;
            e.expiresMs = e.dateTimeMs + 1 + nextLong(horizon * 2 > 1 ? horizon * 2 : 1);
            e.itemName = nextString(20);
            e.description = nextString(100);
            e.reserve = e.initialBid + nextPrice();
            e.extra = nextExtra(8 + e.itemName.length() + e.description.length() + 40,
                    avgAuctionBytes);
        } else {
            long auction = nextInt(hotAuctionRatio) > 0 ? (lastAuction(n) / 100) * 100
                    : nextAuctionId(n);
            e.auction = auction + 1000;
            long bidder = nextInt(hotBiddersRatio) > 0 ? (lastPerson(n) / 100) * 100 + 1
                    : nextPerson(n);
            e.bidder = bidder + 1000;
            e.price = nextPrice();
            if (nextInt(2) > 0) {
                int i = nextInt(HOT_CHANNELS.length);
                e.channel = HOT_CHANNELS[i];
                e.url = HOT_URLS[i];
            } else {
                int ch = nextInt(10000);
                String a = nextString(5), b = nextString(5), d = nextString(5);
                e.channel = "channel-" + ch;
                e.url = ("https://www.nexmark.com/" + a + "/" + b + "/" + d
                        + "/item.htm?query=1&channel_id=" + ch).replace(' ', '_');
            }
            e.extra = nextExtra(32, avgBidBytes);
        }
    }
}
