//! Uploads: one PutObject for small files, multipart for large ones.

use tributary_s3_sink::Store;

use crate::harness::Bucket;

#[tokio::test]
async fn small_and_multipart_uploads_round_trip() {
    let bucket = Bucket::new("s3up").await;
    let config = bucket.config(&[
        ("format.class", "json"),
        ("flush.size", "1"),
        ("s3.part.size", "5242880"),
    ]);
    let store = Store::connect(&config).await;
    store.check().await.expect("bucket reachable");
    let dir = tempfile::tempdir().expect("tmp");
    // 13 MiB of incompressible bytes: three parts of 5, 5 and 3 MiB.
    let large: Vec<u8> = (0..13 * 1024 * 1024)
        .map(|_| rand::random::<u8>())
        .collect();
    let small = b"{\"a\":1}\n".to_vec();
    for (name, body) in [("large", &large), ("small", &small)] {
        let path = dir.path().join(name);
        std::fs::write(&path, body).expect("write");
        store
            .upload(&format!("dir/{name}"), &path, body.len() as u64)
            .await
            .expect("upload");
    }
    assert_eq!(bucket.keys().await, ["dir/large", "dir/small"]);
    assert!(
        bucket.get("dir/large").await == large,
        "multipart object differs from the file"
    );
    assert_eq!(bucket.get("dir/small").await, small);
}

#[tokio::test]
async fn missing_bucket_is_a_definite_error() {
    let bucket = Bucket::new("s3miss").await;
    let mut config = bucket.config(&[("format.class", "json"), ("flush.size", "1")]);
    config.bucket = format!("{}x", bucket.name);
    let err = Store::connect(&config)
        .await
        .check()
        .await
        .expect_err("bucket is missing");
    assert_eq!(
        err.kind,
        tributary_runtime::error::ErrorKind::Definite,
        "{}",
        err.trace()
    );
    assert!(err.message.contains("does not exist"), "{}", err.trace());
}
