/*
 * A stand-in with the name of Hibernate's Agroal connection provider, so that
 * Debezium's JdbcSinkConnectorConfig, which names that class as the default of
 * connection.provider, can be loaded.  The real class is in
 * org.hibernate.orm:hibernate-agroal, which Maven Central does not serve at
 * the version Debezium 3.6 asks for (7.2.6.Final, see ../pom.xml); the same
 * stand-in as tests/compat's.
 *
 * Invariant: never used as a provider.  bench/pg_sink.py always sets
 * connection.provider to Hibernate's own DriverManagerConnectionProviderImpl;
 * if the default were ever used, Hibernate would fail to instantiate this
 * class as a ConnectionProvider and the run would fail, not pass silently.
 */
package org.hibernate.agroal.internal;

public final class AgroalConnectionProvider {
    private AgroalConnectionProvider() {
    }
}
