//! An S3-compatible bucket as a repository backend (cargo feature `s3`): restic's
//! layout (`config`, `keys/`, `data/xx/`, ...) under a root in the bucket,
//! through opendal's S3 service and nothing else.
//!
//! rustic_backend's own opendal backend compiles in every opendal service
//! (two dozen clouds and drives); this one is the same backend, after
//! rustic_backend 0.7's `opendal.rs`, with only S3 built.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use bytes::Bytes;
use opendal::blocking::Operator;
use opendal::layers::RetryLayer;
use opendal::options::{ListOptions, ReadOptions};
use rustic_core::{
    BytesList, ErrorKind, FileType, Id, ReadBackend, RusticError, RusticResult, WriteBackend,
    ALL_FILE_TYPES,
};

/// Retries of a failed request when the location names none.
const DEFAULT_RETRY: usize = 5;

/// Parallel requests creating the 256 `data/xx/` directories at init.
const CREATE_THREADS: usize = 8;

/// A repository in an S3-compatible bucket.
#[derive(Clone, Debug)]
pub struct S3Backend {
    operator: Operator,
}

/// The runtime opendal's blocking operator drives its requests on.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("start the runtime of the S3 backend")
    })
}

fn backend_error(what: &'static str, err: opendal::Error) -> Box<RusticError> {
    RusticError::with_source(ErrorKind::Backend, what, err)
}

impl S3Backend {
    /// A backend from opendal's S3 options (`bucket`, `root`, `endpoint`,
    /// `region`, credentials, ...) and `retry`, the number of retries.
    pub fn new(mut options: BTreeMap<String, String>) -> RusticResult<Self> {
        let retries = match options.remove("retry").as_deref() {
            Some("false" | "off") => 0,
            None | Some("default") => DEFAULT_RETRY,
            Some(value) => value.parse().map_err(|err| {
                RusticError::with_source(
                    ErrorKind::InvalidInput,
                    "Parsing retry value `{value}` failed, the value must be a valid integer.",
                    err,
                )
                .attach_context("value", value.to_string())
            })?,
        };
        // The HTTP transport (reqwest), which opendal's default features
        // would install before main.
        opendal::install_default();
        let operator = opendal::Operator::from_iter::<opendal::services::S3>(options)
            .map_err(|err| {
                backend_error(
                    "Creating Operator from path `{path}` failed. Please check the given schema and options.",
                    err,
                )
                .attach_context("path", "s3")
                .attach_context("schema", "s3")
            })?
            .layer(RetryLayer::new().with_max_times(retries).with_jitter());
        let _guard = runtime().enter();
        let operator = Operator::new(operator).map_err(|err| {
            backend_error("Creating blocking Operator from path `{path}` failed.", err)
                .attach_context("path", "s3")
        })?;
        Ok(Self { operator })
    }

    /// Where restic keeps a file of this type and id.
    fn path(tpe: FileType, id: &Id) -> String {
        let hex_id = id.to_hex();
        match tpe {
            FileType::Config => "config".to_string(),
            FileType::Pack => format!("data/{}/{}", &hex_id[0..2], &hex_id[..]),
            _ => format!("{}/{}", tpe.dirname(), &hex_id[..]),
        }
    }

    fn create_dir(&self, path: String) -> RusticResult<()> {
        self.operator.create_dir(&path).map_err(|err| {
            backend_error(
                "Creating directory `{path}` failed in the backend `{location}`. Please check if the given path is correct.",
                err,
            )
            .attach_context("path", path)
            .attach_context("location", self.location())
        })
    }
}

/// restic's lock files (`locks/`), which rustic_core's file types leave out
/// (see [`super::locks`]).
impl S3Backend {
    pub(crate) fn lock_names(&self) -> Result<Vec<String>, opendal::Error> {
        Ok(self
            .operator
            .list("locks/")?
            .into_iter()
            .filter(|e| e.metadata().is_file())
            .map(|e| e.name().to_string())
            .collect())
    }

    /// `None` when it is gone.
    pub(crate) fn read_lock(&self, name: &str) -> Result<Option<Vec<u8>>, opendal::Error> {
        match self.operator.read(&format!("locks/{name}")) {
            Ok(bytes) => Ok(Some(bytes.to_vec())),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn remove_lock(&self, name: &str) -> Result<(), opendal::Error> {
        self.operator.delete(&format!("locks/{name}"))
    }
}

impl ReadBackend for S3Backend {
    fn location(&self) -> String {
        let info = self.operator.info();
        format!("opendal:{}:{}", info.scheme(), info.name())
    }

    fn list_with_size(&self, tpe: FileType) -> RusticResult<Vec<(Id, u32)>> {
        // As rustic_backend: a size over 4 GiB is no file of restic's.
        let length = |size: u64| -> Option<u32> { size.try_into().ok() };
        if tpe == FileType::Config {
            return match self.operator.stat("config") {
                Ok(meta) => Ok(vec![(
                    Id::default(),
                    length(meta.content_length()).unwrap_or_default(),
                )]),
                Err(err) if err.kind() == opendal::ErrorKind::NotFound => Ok(Vec::new()),
                Err(err) => Err(backend_error(
                    "Getting Metadata of type `{type}` failed in the backend. Please check if `{type}` exists.",
                    err,
                )
                .attach_context("type", tpe.to_string())),
            };
        }
        let list_options = ListOptions {
            recursive: true,
            ..Default::default()
        };
        let lister = self
            .operator
            .lister_options(&format!("{}/", tpe.dirname()), list_options)
            .map_err(|err| {
                backend_error("Listing failed for `{type}`", err)
                    .attach_context("type", tpe.to_string())
            })?;
        // As rustic_backend: an entry that fails to list is skipped.
        let entries = lister
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let metadata = entry.metadata();
                if !metadata.is_file() {
                    return None;
                }
                Some((
                    Id::parse_some(entry.name(), tpe)?,
                    length(metadata.content_length())?,
                ))
            })
            .collect();
        Ok(entries)
    }

    fn read_full(&self, tpe: FileType, id: &Id) -> RusticResult<Bytes> {
        let path = Self::path(tpe, id);
        Ok(self
            .operator
            .read(&path)
            .map_err(|err| {
                backend_error(
                    "Reading file `{path}` failed in the backend. Please check if the given path is correct.",
                    err,
                )
                .attach_context("path", path)
                .attach_context("type", tpe.to_string())
                .attach_context("id", id.to_string())
            })?
            .to_bytes())
    }

    fn read_partial(
        &self,
        tpe: FileType,
        id: &Id,
        _cacheable: bool,
        offset: u32,
        length: u32,
    ) -> RusticResult<Bytes> {
        let range = u64::from(offset)..u64::from(offset) + u64::from(length);
        let path = Self::path(tpe, id);
        let read_options = ReadOptions {
            range: range.into(),
            ..Default::default()
        };
        Ok(self
            .operator
            .read_options(&path, read_options)
            .map_err(|err| {
                backend_error(
                    "Partially reading file `{path}` failed in the backend. Please check if the given path is correct.",
                    err,
                )
                .attach_context("path", path)
                .attach_context("type", tpe.to_string())
                .attach_context("id", id.to_string())
                .attach_context("offset", offset.to_string())
                .attach_context("length", length.to_string())
            })?
            .to_bytes())
    }

    fn warmup_path(&self, tpe: FileType, id: &Id) -> String {
        let root = self.operator.info().root();
        let root = root.trim_matches('/');
        let relative = Self::path(tpe, id);
        if root.is_empty() {
            relative
        } else {
            format!("{root}/{relative}")
        }
    }
}

impl WriteBackend for S3Backend {
    fn create(&self) -> RusticResult<()> {
        for tpe in ALL_FILE_TYPES {
            self.create_dir(format!("{}/", tpe.dirname()))?;
        }
        let prefixes: Vec<u8> = (0u8..=255).collect();
        std::thread::scope(|s| {
            let workers: Vec<_> = prefixes
                .chunks(prefixes.len().div_ceil(CREATE_THREADS))
                .map(|chunk| {
                    s.spawn(move || {
                        chunk
                            .iter()
                            .try_for_each(|i| self.create_dir(format!("data/{i:02x}/")))
                    })
                })
                .collect();
            workers
                .into_iter()
                .try_for_each(|w| w.join().expect("an S3 create thread panicked"))
        })
    }

    fn write_bytes(
        &self,
        tpe: FileType,
        id: &Id,
        _cacheable: bool,
        content: BytesList,
    ) -> RusticResult<()> {
        let path = Self::path(tpe, id);
        self.operator
            .write(&path, content.into_vec())
            .map_err(|err| {
                backend_error(
                    "Writing file `{path}` failed in the backend. Please check if the given path is correct.",
                    err,
                )
                .attach_context("path", path)
                .attach_context("type", tpe.to_string())
                .attach_context("id", id.to_string())
            })?;
        Ok(())
    }

    fn remove(&self, tpe: FileType, id: &Id, _cacheable: bool) -> RusticResult<()> {
        let path = Self::path(tpe, id);
        self.operator.delete(&path).map_err(|err| {
            backend_error(
                "Deleting file `{path}` failed in the backend. Please check if the given path is correct.",
                err,
            )
            .attach_context("path", path)
            .attach_context("type", tpe.to_string())
            .attach_context("id", id.to_string())
        })
    }
}
