//! The S3 bucket: client setup (region, endpoint, credentials, retries), the preflight
//! check, and uploads of finished local files.
//!
//! A file up to `s3.part.size` goes up with one `PutObject`; a larger one as a multipart
//! upload whose parts are read from the local file one at a time, so an upload holds at most
//! one part in memory. Either way the object becomes visible only when complete: a crash
//! mid-upload leaves no partial object (an unfinished multipart upload stays invisible until
//! aborted, here on error, or by a bucket lifecycle rule after a crash).

use std::fmt::Display;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Credentials as StaticCredentials, Region, RequestChecksumCalculation};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use tributary_runtime::error::ConnectorError;

use crate::config::{Credentials, S3SinkConfig};

/// S3 error codes that retrying will not fix.
const DEFINITE_CODES: &[&str] = &[
    "NoSuchBucket",
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AllAccessDisabled",
    "InvalidBucketName",
    "AccountProblem",
];

/// A bucket and the client to reach it.
#[derive(Clone, Debug)]
pub struct Store {
    client: Client,
    bucket: String,
    part_size: usize,
}

impl Store {
    /// Builds the client (no request is sent).
    pub async fn connect(config: &S3SinkConfig) -> Store {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()));
        match &config.credentials {
            Credentials::Static {
                access_key,
                secret_key,
            } => {
                loader = loader.credentials_provider(StaticCredentials::new(
                    access_key,
                    secret_key.expose(),
                    None,
                    None,
                    "s3-sink-config",
                ));
            }
            Credentials::Environment => {
                loader = loader.credentials_provider(
                    aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
                );
            }
            Credentials::DefaultChain => {}
        }
        let shared = loader.load().await;
        let mut builder = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(config.path_style)
            .retry_config(RetryConfig::standard().with_max_attempts(config.max_attempts))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .operation_attempt_timeout(Duration::from_secs(300))
                    .build(),
            );
        if let Some(endpoint) = &config.endpoint {
            // S3-compatible servers do not all accept the flexible checksums AWS S3 defaults to.
            builder = builder
                .endpoint_url(endpoint)
                .request_checksum_calculation(RequestChecksumCalculation::WhenRequired);
        }
        Store {
            client: Client::from_conf(builder.build()),
            bucket: config.bucket.clone(),
            part_size: config.part_size,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Preflight: the bucket exists and the credentials may use it.
    pub async fn check(&self) -> Result<(), ConnectorError> {
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => Ok(()),
            Err(err) => {
                let status = err.raw_response().map(|r| r.status().as_u16());
                let bucket = &self.bucket;
                match status {
                    Some(404) => Err(ConnectorError::definite(format!(
                        "bucket {bucket:?} does not exist; create it or fix s3.bucket.name"
                    ))),
                    Some(403) => Err(ConnectorError::definite(format!(
                        "access to bucket {bucket:?} is denied; check the credentials (aws.access.key.id, the default chain) and the bucket policy"
                    ))),
                    _ => Err(s3_error(
                        format!("cannot reach bucket {bucket:?} (s3.region, store.url)"),
                        err,
                    )),
                }
            }
        }
    }

    /// Uploads the local file `path` (`len` bytes) as `key`.
    pub async fn upload(&self, key: &str, path: &Path, len: u64) -> Result<(), ConnectorError> {
        if len <= self.part_size as u64 {
            let body = read_part(path, 0, len as usize).await?;
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(|e| s3_error(format!("PutObject {key}"), e))?;
            return Ok(());
        }
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| s3_error(format!("CreateMultipartUpload {key}"), e))?;
        let Some(upload_id) = created.upload_id() else {
            return Err(ConnectorError::transient(format!(
                "CreateMultipartUpload {key}: the server returned no upload id"
            )));
        };
        match self.upload_parts(key, upload_id, path, len).await {
            Ok(parts) => {
                self.client
                    .complete_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(upload_id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(parts))
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(|e| s3_error(format!("CompleteMultipartUpload {key}"), e))?;
                Ok(())
            }
            Err(err) => {
                // Best effort: a failed abort only leaves an invisible upload behind.
                let _ = self
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(upload_id)
                    .send()
                    .await;
                Err(err)
            }
        }
    }

    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        path: &Path,
        len: u64,
    ) -> Result<Vec<CompletedPart>, ConnectorError> {
        let mut parts = Vec::new();
        let mut offset = 0u64;
        let mut number = 1i32;
        while offset < len {
            let size = (len - offset).min(self.part_size as u64) as usize;
            let body = read_part(path, offset, size).await?;
            let out = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(|e| s3_error(format!("UploadPart {number} of {key}"), e))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(out.e_tag().map(str::to_owned))
                    .build(),
            );
            offset += size as u64;
            number += 1;
        }
        Ok(parts)
    }
}

/// Reads `len` bytes at `offset` of a local file, off the async threads.
async fn read_part(path: &Path, offset: u64, len: usize) -> Result<Vec<u8>, ConnectorError> {
    let owned = path.to_path_buf();
    tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
        let mut file = std::fs::File::open(&owned)?;
        file.seek(SeekFrom::Start(offset))?;
        let mut buf = vec![0u8; len];
        file.read_exact(&mut buf)?;
        Ok(buf)
    })
    .await
    .map_err(|e| ConnectorError::transient("reading a spill file failed").with_source(e))?
    .map_err(|e| {
        ConnectorError::transient(format!("reading spill file {}", path.display())).with_source(e)
    })
}

/// An S3 error, classified: auth and missing-bucket errors are definite, the rest transient.
pub fn s3_error<E, R>(what: impl Display, err: SdkError<E, R>) -> ConnectorError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let code = err.code().map(str::to_owned);
    let message = format!("{what}: {}", DisplayErrorContext(&err));
    match code.as_deref() {
        Some(c) if DEFINITE_CODES.contains(&c) => ConnectorError::definite(message),
        _ => ConnectorError::transient(message),
    }
}
