-- The role the Postgres source connects as: LOGIN REPLICATION, reads every table, and may
-- create the publication for the tables it captures (publication.autocreate.mode=filtered).
CREATE ROLE cdc WITH LOGIN REPLICATION PASSWORD 'cdc';
GRANT pg_read_all_data TO cdc;
-- The JDBC sink writes MySQL's inventory tables into this database.
CREATE DATABASE warehouse;
CREATE ROLE sink WITH LOGIN PASSWORD 'sink';
ALTER DATABASE warehouse OWNER TO sink;
