-- The least-privilege user the MySQL source connects as (Debezium's documented grants).
-- mysql_native_password: this build's MySQL client has no TLS, and caching_sha2_password's
-- full authentication needs TLS or an RSA key exchange.
CREATE USER IF NOT EXISTS 'cdc'@'%' IDENTIFIED WITH mysql_native_password BY 'cdc';
GRANT SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT, LOCK TABLES
    ON *.* TO 'cdc'@'%';
FLUSH PRIVILEGES;
