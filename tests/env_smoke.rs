//! Smoke tests of the real-server test environment (`scripts/test-env.sh up`): one real
//! operation per server, done the way the connectors will do it, with the least-privilege
//! CDC users where a connector would use them.

use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use futures::StreamExt as _;

use crate::support::env::{TestEnv, unique_name, with_database};

/// Upper bound for each smoke test; the servers answer in milliseconds.
const DEADLINE: Duration = Duration::from_secs(60);

async fn within<T>(what: &str, fut: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(DEADLINE, fut)
        .await
        .with_context(|| format!("{what}: no result within {DEADLINE:?}"))?
}

// --- MariaDB ---------------------------------------------------------------------

/// The CDC user reads a row insert from the binlog over the replication protocol.
#[tokio::test(flavor = "multi_thread")]
async fn mariadb_cdc_user_reads_binlog_write_rows() -> Result<()> {
    use mysql_async::binlog::events::{EventData, RowsEventData};
    use mysql_async::prelude::Queryable as _;
    use mysql_async::{BinlogStreamRequest, Conn, Opts, Row};

    const SETTINGS: &str = "SELECT @@global.binlog_format, @@global.binlog_row_metadata, \
                            @@global.binlog_row_image";
    // MariaDB sends its own events (GTID, annotate rows) only to replicas announcing it.
    const REPLICA_SESSION: &str = "SET @mariadb_slave_capability = 4, \
                                   @master_binlog_checksum = @@global.binlog_checksum";

    let env = TestEnv::load();
    let db = unique_name("smokemdb");

    within("mariadb binlog smoke", async {
        let mut admin = Conn::new(Opts::from_url(&env.mariadb_url)?)
            .await
            .context("admin connect")?;
        let settings: (String, String, String) =
            admin.query_first(SETTINGS).await?.context("no row")?;
        let expected = ("ROW".to_owned(), "FULL".to_owned(), "FULL".to_owned());
        assert_eq!(
            settings, expected,
            "binlog_format, binlog_row_metadata, binlog_row_image"
        );

        // Start position, read with the CDC user's REPLICATION CLIENT grant.
        let mut cdc = Conn::new(Opts::from_url(&env.mariadb_cdc_url)?)
            .await
            .context("cdc connect")?;
        let status: Row = cdc
            .query_first("SHOW MASTER STATUS")
            .await?
            .context("binlog is off")?;
        let file: String = status.get(0).context("no File")?;
        let pos: u64 = status.get(1).context("no Position")?;

        for sql in [
            format!("CREATE DATABASE {db}"),
            format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, name VARCHAR(20))"),
            format!("INSERT INTO {db}.t VALUES (1, 'héllo')"),
        ] {
            admin.query_drop(sql).await?;
        }

        cdc.query_drop(REPLICA_SESSION).await?;
        // A server id no other binlog client uses (the server drops a duplicate's stream).
        let server_id = 1_000_000 + rand::random::<u32>() % 1_000_000_000;
        let request = BinlogStreamRequest::new(server_id)
            .with_filename(file.as_bytes())
            .with_pos(pos);
        let mut stream = cdc
            .get_binlog_stream(request)
            .await
            .context("binlog dump as cdc")?;

        while let Some(event) = stream.next().await {
            let event = event.context("binlog stream")?;
            let Some(EventData::RowsEvent(rows)) = event.read_data()? else {
                continue;
            };
            let is_insert = matches!(
                rows,
                RowsEventData::WriteRowsEventV1(_) | RowsEventData::WriteRowsEvent(_)
            );
            let tme = stream
                .get_tme(rows.table_id())
                .context("rows event without table map")?;
            if is_insert && tme.database_name() == db && tme.table_name() == "t" {
                assert_eq!(rows.num_columns(), 2);
                admin.query_drop(format!("DROP DATABASE {db}")).await?;
                return Ok(());
            }
        }
        bail!("binlog stream ended before the WRITE_ROWS event of {db}.t")
    })
    .await
}

// --- PostgreSQL ------------------------------------------------------------------

async fn pg_connect(url: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connect {}", url.split('@').next_back().unwrap_or(url)))?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            eprintln!("postgres connection ended: {err}");
        }
    });
    Ok(client)
}

/// The CDC role creates a pgoutput slot and decodes an insert through a publication; it can
/// also open a `replication=database` connection (what a streaming connector uses).
#[tokio::test(flavor = "multi_thread")]
async fn postgres_cdc_role_decodes_insert_through_pgoutput_slot() -> Result<()> {
    let env = TestEnv::load();
    let db = unique_name("smokepg");
    let slot = unique_name("smokeslot");
    let publication = unique_name("smokepub");

    within("postgres slot smoke", async {
        let admin = pg_connect(&env.pg_url).await?;
        let wal_level = admin
            .query_one("SHOW wal_level", &[])
            .await?
            .get::<_, String>(0);
        assert_eq!(wal_level, "logical");
        admin
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .await?;

        let admin_db = pg_connect(&with_database(&env.pg_url, &db)).await?;
        admin_db
            .batch_execute(&format!(
                "CREATE TABLE t (id int PRIMARY KEY, name text);
                 CREATE PUBLICATION {publication} FOR TABLE t;"
            ))
            .await?;

        let cdc = pg_connect(&with_database(&env.pg_cdc_url, &db)).await?;
        cdc.query_one(
            "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
            &[&slot],
        )
        .await
        .context("cdc role creates a logical slot")?;
        let plugin: String = admin
            .query_one(
                "SELECT plugin::text FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await?
            .get(0);
        assert_eq!(plugin, "pgoutput");

        admin_db
            .batch_execute("INSERT INTO t VALUES (1, 'héllo')")
            .await?;
        // pg_read_all_data lets the CDC role read tables it was never granted (snapshots).
        let count: i64 = cdc.query_one("SELECT count(*) FROM t", &[]).await?.get(0);
        assert_eq!(count, 1);

        let changes = cdc
            .query(
                "SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL,
                     'proto_version', '1', 'publication_names', $2)",
                &[&slot, &publication],
            )
            .await
            .context("peek changes as cdc")?;
        let messages: Vec<Vec<u8>> = changes.iter().map(|row| row.get(0)).collect();
        let kinds: String = messages
            .iter()
            .filter_map(|m| m.first().map(|&b| b as char))
            .collect();
        // Begin, Relation, Insert, Commit.
        assert_eq!(kinds, "BRIC", "pgoutput message kinds");
        let relation = &messages[1];
        assert!(
            relation.windows(2).any(|w| w == b"t\0"),
            "relation message names table t"
        );

        identify_system_as_cdc(&env, &db).await?;

        cdc.query_one("SELECT pg_drop_replication_slot($1)", &[&slot])
            .await?;
        drop(cdc);
        drop(admin_db);
        admin
            .batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)"))
            .await?;
        Ok(())
    })
    .await
}

/// tokio-postgres cannot open replication connections, so this uses psql: proves the
/// `replication` pg_hba entry and the role's REPLICATION attribute with password auth.
async fn identify_system_as_cdc(env: &TestEnv, db: &str) -> Result<()> {
    let url = format!(
        "{}?replication=database",
        with_database(&env.pg_cdc_url, db)
    );
    let output = tokio::process::Command::new(&env.psql_bin)
        .args([
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "IDENTIFY_SYSTEM",
            &url,
        ])
        .output()
        .await
        .with_context(|| format!("run {}", env.psql_bin.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success(),
        "IDENTIFY_SYSTEM over replication=database failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // systemid|timeline|xlogpos|dbname
    ensure!(
        stdout.trim().ends_with(&format!("|{db}")),
        "IDENTIFY_SYSTEM output: {stdout}"
    );
    Ok(())
}

// --- Kafka protocol (tansu) ----------------------------------------------------------

/// Topic creation, idempotent produce with keys, group consume with a synchronous commit,
/// and the committed offset seen from a fresh consumer in the same group.
#[tokio::test(flavor = "multi_thread")]
async fn kafka_produce_consume_and_commit_with_group() -> Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};

    let env = TestEnv::load();
    let topic = unique_name("smoketopic");
    let group = unique_name("smokegroup");
    let config = |extra: &[(&str, &str)]| {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &env.kafka_bootstrap);
        for (key, value) in extra {
            config.set(*key, *value);
        }
        config
    };
    let consumer_config = [
        ("group.id", group.as_str()),
        ("auto.offset.reset", "earliest"),
        ("enable.auto.commit", "false"),
    ];

    within("kafka smoke", async {
        let admin: AdminClient<DefaultClientContext> = config(&[]).create()?;
        let created = admin
            .create_topics(
                [&NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
                &AdminOptions::new(),
            )
            .await?;
        for result in created {
            result.map_err(|(name, code)| anyhow::anyhow!("create topic {name}: {code}"))?;
        }

        let producer: FutureProducer =
            config(&[("acks", "all"), ("enable.idempotence", "true")]).create()?;
        for i in 0..10 {
            let (key, payload) = (format!("key-{i}"), format!("value-{i}"));
            producer
                .send(
                    FutureRecord::to(&topic).key(&key).payload(&payload),
                    Duration::from_secs(30),
                )
                .await
                .map_err(|(err, _)| anyhow::anyhow!("produce {key}: {err}"))?;
        }

        let consumer: StreamConsumer = config(&consumer_config).create()?;
        consumer.subscribe(&[topic.as_str()])?;
        let mut seen = Vec::new();
        let mut next_offset = 0;
        while seen.len() < 10 {
            let message = consumer.recv().await?;
            let key =
                String::from_utf8_lossy(message.key().context("message without key")?).into_owned();
            let payload =
                String::from_utf8_lossy(message.payload().context("message without payload")?);
            assert_eq!(payload, key.replace("key", "value"));
            seen.push(key);
            next_offset = message.offset() + 1;
            if seen.len() == 10 {
                consumer.commit_message(&message, CommitMode::Sync)?;
            }
        }
        let expected: Vec<String> = (0..10).map(|i| format!("key-{i}")).collect();
        assert_eq!(seen, expected, "keys in produce order");
        drop(consumer);

        let fresh: StreamConsumer = config(&consumer_config).create()?;
        let mut partitions = TopicPartitionList::new();
        partitions.add_partition(&topic, 0);
        let committed = fresh.committed_offsets(partitions, Duration::from_secs(10))?;
        let offset = committed
            .find_partition(&topic, 0)
            .context("no committed offset for partition 0")?
            .offset();
        assert_eq!(
            offset,
            Offset::Offset(next_offset),
            "committed offset seen by the group"
        );

        admin
            .delete_topics(&[topic.as_str()], &AdminOptions::new())
            .await?;
        Ok(())
    })
    .await
}

// --- S3 (s3s-fs) -------------------------------------------------------------------

/// Bucket create, object put and get back byte-for-byte, with the SDK's path-style addressing.
#[tokio::test(flavor = "multi_thread")]
async fn s3_put_and_get_object() -> Result<()> {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    use aws_sdk_s3::primitives::ByteStream;

    let env = TestEnv::load();
    let bucket = unique_name("smokebucket");

    within("s3 smoke", async {
        let credentials = Credentials::new(
            &env.s3_access_key,
            &env.s3_secret_key,
            None,
            None,
            "test-env",
        );
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(env.s3_region.clone()))
            .endpoint_url(&env.s3_endpoint)
            .credentials_provider(credentials)
            .force_path_style(true)
            .build();
        let s3 = aws_sdk_s3::Client::from_conf(config);

        s3.create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .context("create bucket")?;
        let body: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
        s3.put_object()
            .bucket(&bucket)
            .key("dir/object.bin")
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .context("put object")?;
        let got = s3
            .get_object()
            .bucket(&bucket)
            .key("dir/object.bin")
            .send()
            .await
            .context("get object")?;
        let bytes = got.body.collect().await?.into_bytes();
        assert_eq!(bytes.as_ref(), body.as_slice());

        s3.delete_object()
            .bucket(&bucket)
            .key("dir/object.bin")
            .send()
            .await?;
        s3.delete_bucket().bucket(&bucket).send().await?;
        Ok(())
    })
    .await
}
