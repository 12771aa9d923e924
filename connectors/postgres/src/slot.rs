//! The SQL side: connection, preflight checks, publication, slot state, catalog lookups.

use tokio_postgres::{Client, Connection, NoTls, Socket};
use tracing::{info, warn};

use tributary_runtime::model::TableId;

use crate::config::{PgConfig, PublicationMode};
use crate::error::PgError;
use crate::replication::{ConnectParams, Lsn, PINNED_SETTINGS, quote_ident};
use crate::schema::{TypeCatalog, UserType};
use crate::tls::ConnectionKind;

/// Connection parameters of a config.
pub fn connect_params(cfg: &PgConfig) -> ConnectParams {
    ConnectParams {
        host: cfg.host.clone(),
        port: cfg.port,
        user: cfg.user.clone(),
        password: cfg.password.as_ref().map(|s| s.expose().to_owned()),
        dbname: cfg.dbname.clone(),
        application_name: format!("tributary-{}", cfg.name),
        tls: cfg.tls.clone(),
    }
}

/// Opens a SQL connection with the pinned session settings; the connection future runs on
/// its own task.
pub async fn connect_sql(cfg: &PgConfig) -> Result<Client, PgError> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&cfg.host)
        .port(cfg.port)
        .user(&cfg.user)
        .dbname(&cfg.dbname)
        .application_name(format!("tributary-{}", cfg.name));
    if let Some(pw) = &cfg.password {
        config.password(pw.expose());
    }
    let options: Vec<String> = PINNED_SETTINGS
        .iter()
        .map(|(k, v)| format!("-c {k}={}", v.replace(' ', "\\ ")))
        .collect();
    config.options(options.join(" "));
    config.ssl_mode(cfg.tls.sql_ssl_mode());
    let what = format!("postgres at {}:{}", cfg.host, cfg.port);
    let failed = |e: tokio_postgres::Error| {
        cfg.tls.sql_connect_error(&what, &e).unwrap_or_else(|| {
            PgError::sql(format!(
                "cannot connect to {what} as {} (database.hostname, database.port, database.user, database.password)",
                cfg.user
            ))(e)
        })
    };
    match cfg.tls.make_tls_connect(&what)? {
        Some(tls) => {
            let negotiated = tls.negotiated.clone();
            let (client, connection) = config.connect(tls).await.map_err(failed)?;
            spawn_connection(connection);
            let negotiated = negotiated.lock().ok().and_then(|n| n.clone());
            cfg.tls.report(ConnectionKind::Sql, negotiated.as_ref());
            Ok(client)
        }
        None => {
            let (client, connection) = config.connect(NoTls).await.map_err(failed)?;
            spawn_connection(connection);
            cfg.tls.report(ConnectionKind::Sql, None);
            Ok(client)
        }
    }
}

/// Runs a tokio-postgres connection future on its own task.
fn spawn_connection<T>(connection: Connection<Socket, T>)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            warn!(error = %e, "postgres sql connection ended");
        }
    });
}

/// State of a replication slot from `pg_replication_slots`.
#[derive(Debug, Clone)]
pub struct SlotInfo {
    pub plugin: Option<String>,
    pub database: Option<String>,
    pub active_pid: Option<i32>,
    pub confirmed_flush: Option<Lsn>,
    /// `reserved`, `extended`, `unreserved` or `lost`.
    pub wal_status: Option<String>,
}

pub async fn slot_info(client: &Client, slot: &str) -> Result<Option<SlotInfo>, PgError> {
    let row = client
        .query_opt(
            "SELECT plugin::text, database::text, active_pid, confirmed_flush_lsn::text, wal_status \
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(PgError::sql("reading pg_replication_slots"))?;
    Ok(row.map(|r| SlotInfo {
        plugin: r.get(0),
        database: r.get(1),
        active_pid: r.get(2),
        confirmed_flush: r
            .get::<_, Option<String>>(3)
            .as_deref()
            .and_then(Lsn::parse),
        wal_status: r.get(4),
    }))
}

/// Bytes of WAL the server keeps for this slot (current WAL position minus confirmed flush).
pub async fn slot_lag_bytes(client: &Client, slot: &str) -> Result<Option<i64>, PgError> {
    let row = client
        .query_opt(
            "SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::int8 FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(PgError::sql("reading slot lag"))?;
    Ok(row.and_then(|r| r.get(0)))
}

pub async fn drop_slot(client: &Client, slot: &str) -> Result<(), PgError> {
    client
        .execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(PgError::sql(format!("dropping replication slot {slot}")))?;
    Ok(())
}

/// Captured tables: ordinary and partitioned tables outside the system schemas that pass
/// the schema and table filters.
pub async fn captured_tables(client: &Client, cfg: &PgConfig) -> Result<Vec<TableId>, PgError> {
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
               AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
               AND n.nspname NOT LIKE 'pg\\_%' \
             ORDER BY 1, 2",
            &[],
        )
        .await
        .map_err(PgError::sql("listing tables"))?;
    Ok(rows
        .iter()
        .map(|r| TableId::new(r.get::<_, String>(0), r.get::<_, String>(1)))
        .filter(|t| cfg.captures(t))
        .collect())
}

/// One column from the catalog.
#[derive(Debug, Clone)]
pub struct CatalogColumn {
    pub name: String,
    pub not_null: bool,
    pub type_oid: u32,
    pub type_modifier: i32,
    /// Position in the primary key, when part of it.
    pub pk_position: Option<i32>,
}

/// Columns of a table in attribute order, with primary-key positions.
pub async fn table_columns(
    client: &Client,
    table: &TableId,
) -> Result<Vec<CatalogColumn>, PgError> {
    let rows = client
        .query(
            "SELECT a.attname::text, a.attnotnull, a.atttypid::int8, a.atttypmod, \
                    (SELECT array_position(i.indkey::int2[], a.attnum) FROM pg_index i \
                      WHERE i.indrelid = c.oid AND i.indisprimary) \
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            &[&table.namespace, &table.name],
        )
        .await
        .map_err(PgError::sql(format!("reading columns of {table}")))?;
    Ok(rows
        .iter()
        .map(|r| CatalogColumn {
            name: r.get(0),
            not_null: r.get(1),
            type_oid: r.get::<_, i64>(2) as u32,
            type_modifier: r.get(3),
            pk_position: r.get(4),
        })
        .collect())
}

/// Enums, domains and arrays of user types.
pub async fn load_types(client: &Client) -> Result<TypeCatalog, PgError> {
    let rows = client
        .query(
            "SELECT t.oid::int8, t.typtype::text, t.typname::text, t.typbasetype::int8, t.typtypmod, \
                    t.typelem::int8, t.typcategory::text, \
                    (SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid) \
             FROM pg_type t WHERE t.oid >= 16384 AND (t.typtype IN ('e', 'd') OR t.typcategory = 'A')",
            &[],
        )
        .await
        .map_err(PgError::sql("reading pg_type"))?;
    let mut catalog = TypeCatalog::default();
    for r in rows {
        let oid = r.get::<_, i64>(0) as u32;
        let typtype: String = r.get(1);
        let ty = match typtype.as_str() {
            "e" => UserType::Enum {
                name: r.get(2),
                labels: r.get::<_, Option<Vec<String>>>(7).unwrap_or_default(),
            },
            "d" => UserType::Domain {
                base: r.get::<_, i64>(3) as u32,
                modifier: r.get(4),
            },
            _ => UserType::Array {
                element: r.get::<_, i64>(5) as u32,
            },
        };
        catalog.user.insert(oid, ty);
    }
    // Arrays of user types may point at user types: nothing more to do, resolve() recurses.
    Ok(catalog)
}

/// Creates the publication when it is missing and the mode allows it.
pub async fn ensure_publication(
    client: &Client,
    cfg: &PgConfig,
    tables: &[TableId],
) -> Result<(), PgError> {
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_publication WHERE pubname = $1",
            &[&cfg.publication_name],
        )
        .await
        .map_err(PgError::sql("reading pg_publication"))?
        .is_some();
    if exists {
        return Ok(());
    }
    let name = quote_ident(&cfg.publication_name);
    let sql = match cfg.publication_mode {
        PublicationMode::Disabled => {
            return Err(PgError::Setup(format!(
                "publication.name: publication {} does not exist and publication.autocreate.mode is disabled. Run CREATE PUBLICATION {name} FOR ALL TABLES (or FOR TABLE ...)",
                cfg.publication_name
            )));
        }
        PublicationMode::AllTables => format!("CREATE PUBLICATION {name} FOR ALL TABLES"),
        PublicationMode::Filtered => {
            if tables.is_empty() {
                return Err(PgError::Setup(
                    "table.include.list: matches no table, so a filtered publication cannot be created".into(),
                ));
            }
            let list: Vec<String> = tables
                .iter()
                .map(|t| format!("{}.{}", quote_ident(&t.namespace), quote_ident(&t.name)))
                .collect();
            format!("CREATE PUBLICATION {name} FOR TABLE {}", list.join(", "))
        }
    };
    client.batch_execute(&sql).await.map_err(|e| {
        PgError::Setup(format!(
            "publication.name: cannot create publication {} ({}): {e}. Create it as a superuser or table owner: {sql}",
            cfg.publication_name,
            e.as_db_error().map_or("", |d| d.message())
        ))
    })?;
    info!(publication = %cfg.publication_name, "publication created");
    Ok(())
}

/// Preflight: every server-side requirement, each failure with its fix.
pub async fn preflight(cfg: &PgConfig) -> Result<(), PgError> {
    let client = connect_sql(cfg).await?;
    let setting = |name: &'static str| {
        let client = &client;
        async move {
            client
                .query_one("SELECT current_setting($1)", &[&name])
                .await
                .map(|r| r.get::<_, String>(0))
                .map_err(PgError::sql(format!("reading {name}")))
        }
    };
    let wal_level = setting("wal_level").await?;
    if wal_level != "logical" {
        return Err(PgError::Setup(format!(
            "wal_level is {wal_level}; logical decoding needs logical. Run ALTER SYSTEM SET wal_level = logical and restart Postgres"
        )));
    }
    let role = client
        .query_one(
            "SELECT rolreplication, rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .map_err(PgError::sql("reading pg_roles"))?;
    let (replication, superuser): (bool, bool) = (role.get(0), role.get(1));
    if !replication && !superuser {
        return Err(PgError::Setup(format!(
            "database.user: role {} has neither REPLICATION nor SUPERUSER. Run ALTER ROLE {} REPLICATION",
            cfg.user,
            quote_ident(&cfg.user)
        )));
    }
    let slot = slot_info(&client, &cfg.slot_name).await?;
    match &slot {
        Some(info) => {
            if let Some(pid) = info.active_pid {
                // Transient: it may be our own previous session still exiting.
                return Err(PgError::Server {
                    code: "55006".into(),
                    message: format!(
                        "slot.name: replication slot {} is active in another session (pid {pid}). Stop the other consumer or choose another slot.name",
                        cfg.slot_name
                    ),
                    context: "preflight".into(),
                });
            }
            if info.plugin.as_deref() != Some("pgoutput") {
                return Err(PgError::Setup(format!(
                    "slot.name: replication slot {} uses plugin {:?}, not pgoutput. Drop it (SELECT pg_drop_replication_slot('{}')) or choose another slot.name",
                    cfg.slot_name,
                    info.plugin.as_deref().unwrap_or("none"),
                    cfg.slot_name
                )));
            }
            if info.database.as_deref() != Some(cfg.dbname.as_str()) {
                return Err(PgError::Setup(format!(
                    "slot.name: replication slot {} belongs to database {:?}, not {}. Choose another slot.name",
                    cfg.slot_name,
                    info.database.as_deref().unwrap_or("none"),
                    cfg.dbname
                )));
            }
            if info.wal_status.as_deref() == Some("lost") {
                return Err(PgError::SlotLost(format!(
                    "slot.name: replication slot {} was invalidated (wal_status lost: the server removed WAL it still needed, see max_slot_wal_keep_size). Drop it and restart with snapshot.mode=when_needed or initial",
                    cfg.slot_name
                )));
            }
        }
        None => {
            let free: i64 = client
                .query_one(
                    "SELECT current_setting('max_replication_slots')::int8 - (SELECT count(*) FROM pg_replication_slots)",
                    &[],
                )
                .await
                .map_err(PgError::sql("counting replication slots"))?
                .get(0);
            if free < 1 {
                return Err(PgError::Setup(
                    "max_replication_slots: every replication slot is in use. Drop unused slots (pg_drop_replication_slot) or raise max_replication_slots and restart Postgres".into(),
                ));
            }
        }
    }
    let senders: i64 = client
        .query_one(
            "SELECT current_setting('max_wal_senders')::int8 - (SELECT count(*) FROM pg_stat_replication)",
            &[],
        )
        .await
        .map_err(PgError::sql("counting WAL senders"))?
        .get(0);
    if senders < 1 {
        return Err(PgError::Setup(
            "max_wal_senders: every WAL sender is in use. Raise max_wal_senders and restart Postgres".into(),
        ));
    }
    let tables = captured_tables(&client, cfg).await?;
    let publication_exists = client
        .query_opt(
            "SELECT puballtables FROM pg_publication WHERE pubname = $1",
            &[&cfg.publication_name],
        )
        .await
        .map_err(PgError::sql("reading pg_publication"))?;
    if publication_exists.is_none() {
        match cfg.publication_mode {
            PublicationMode::Disabled => {
                return Err(PgError::Setup(format!(
                    "publication.name: publication {} does not exist and publication.autocreate.mode is disabled. Run CREATE PUBLICATION {} FOR ALL TABLES (or FOR TABLE ...)",
                    cfg.publication_name,
                    quote_ident(&cfg.publication_name)
                )));
            }
            PublicationMode::AllTables if !superuser => {
                return Err(PgError::Setup(format!(
                    "publication.name: publication {} does not exist and only a superuser can create it FOR ALL TABLES. Run CREATE PUBLICATION {} FOR ALL TABLES as a superuser, or use publication.autocreate.mode=filtered with table.include.list",
                    cfg.publication_name,
                    quote_ident(&cfg.publication_name)
                )));
            }
            _ => {}
        }
    }
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text, c.relreplident::text, \
                    EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary), \
                    has_table_privilege(c.oid, 'SELECT') \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p')",
            &[],
        )
        .await
        .map_err(PgError::sql("reading replica identities"))?;
    for r in rows {
        let id = TableId::new(r.get::<_, String>(0), r.get::<_, String>(1));
        if !tables.contains(&id) {
            continue;
        }
        let ident: String = r.get(2);
        let has_pk: bool = r.get(3);
        let can_read: bool = r.get(4);
        let qualified = format!("{}.{}", quote_ident(&id.namespace), quote_ident(&id.name));
        if !can_read {
            return Err(PgError::Setup(format!(
                "database.user: role {} cannot read table {id}. Run GRANT SELECT ON {qualified} TO {} (or GRANT pg_read_all_data)",
                cfg.user,
                quote_ident(&cfg.user)
            )));
        }
        match ident.as_str() {
            "n" => {
                return Err(PgError::Setup(format!(
                    "table {id} has REPLICA IDENTITY NOTHING; updates and deletes cannot be captured. Run ALTER TABLE {qualified} REPLICA IDENTITY FULL, or exclude it with table.exclude.list"
                )));
            }
            "d" if !has_pk => {
                return Err(PgError::Setup(format!(
                    "table {id} has REPLICA IDENTITY DEFAULT and no primary key; updates and deletes on it will fail on the server and cannot be captured. Run ALTER TABLE {qualified} REPLICA IDENTITY FULL (or add a primary key), or exclude it with table.exclude.list"
                )));
            }
            _ => {}
        }
    }
    Ok(())
}
