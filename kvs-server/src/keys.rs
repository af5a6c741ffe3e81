//! Keys of encryption at rest: the master key file, per-stream data keys, the sealed stream
//! catalog and the data directory's format marker.
//!
//! * **Master key file** (`<data dir>/master-keys`, or `--master-key-file`): text, one
//!   `<key-id> <64 hex digits>` per line; `#` starts a comment line. Key ids are `alias/<name>`
//!   or `key/<uuid>`. It is created at first start (mode 0600, with `alias/aws/kinesisvideo`) and
//!   refused when group or others may read it.
//! * **KmsKeyId** of a stream selects its master key: `alias/x`, an alias ARN
//!   `arn:aws:kms:<region>:<account>:alias/x`, a key ARN `...:key/<uuid>` or a bare key id
//!   `<uuid>` (region and account of an ARN are not checked).
//! * **Data key**: 32 random bytes per stream, wrapped (AES-256-GCM under the master key, AAD =
//!   stream identity + master key id) in `<stream dir>/data-key`; it seals the stream's headers
//!   and fragments (see [`crate::seal`]).
//! * **Catalog**: the stream metadata (names, tags, device names, ...) is stored sealed directly
//!   under the default master key `alias/aws/kinesisvideo` in `<data dir>/catalog.sealed`.
//! * **Format marker**: `<data dir>/FORMAT` holds `kvs-data 2`; a data directory without it that
//!   holds data of the earlier, unencrypted layout (a `streams.json`), or with another version,
//!   is refused at start.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::ServerError;
use crate::seal::{DataKey, KEY_LEN, SealError, SealKey, os_random};

/// Id of the default master key (the service's AWS-managed key `aws/kinesisvideo`).
pub const DEFAULT_KEY_ID: &str = "alias/aws/kinesisvideo";
/// File name of the master key file inside the data directory.
pub const KEY_FILE: &str = "master-keys";
/// File name of the format marker.
pub const FORMAT_FILE: &str = "FORMAT";
/// The format this server reads and writes.
pub const FORMAT_VERSION: u32 = 2;
/// File name of the sealed stream catalog.
pub const CATALOG_FILE: &str = "catalog.sealed";
/// File name of a stream's wrapped data key.
pub const DATA_KEY_FILE: &str = "data-key";
/// The clear stream metadata file of format 1.
const LEGACY_META_FILE: &str = "streams.json";

const CATALOG_MAGIC: &[u8; 5] = b"KVSC1";
const CATALOG_AAD: &[u8] = b"kvs-catalog-v1\0";
const DATA_KEY_AAD: &[u8] = b"kvs-data-key-v1\0";
const DATA_KEY_HEAD: &str = "kvs-data-key 1";
/// Largest master key file, data key file or key id accepted.
const MAX_KEY_FILE_BYTES: u64 = 1024 * 1024;
const MAX_KEY_ID_LEN: usize = 256;

/// Why a stream's data key is not available.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The stream's KmsKeyId names no key of the master key file (ERROR 4506).
    #[error("KMS key {kms_key_id} was not found: add it to the master key file {key_file}")]
    UnknownKey {
        /// The KmsKeyId.
        kms_key_id: String,
        /// The master key file.
        key_file: PathBuf,
    },
    /// The wrapped data key names a master key the key file lacks.
    #[error(
        "{path} is wrapped by master key {key_id}, which the master key file {key_file} does not hold: add that key back"
    )]
    MissingMasterKey {
        /// The data key file.
        path: PathBuf,
        /// The master key id.
        key_id: String,
        /// The master key file.
        key_file: PathBuf,
    },
    /// The wrapped data key does not open under the master key of that name.
    #[error(
        "{path} does not open under master key {key_id} of {key_file}: this key file is not the one the data directory was written with"
    )]
    Unwrap {
        /// The data key file.
        path: PathBuf,
        /// The master key id.
        key_id: String,
        /// The master key file.
        key_file: PathBuf,
    },
    /// The data key file is not in the expected format.
    #[error("{path} is not a kvs data key file: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// Reading or writing the data key file failed.
    #[error("data key file: {0}")]
    Io(#[from] io::Error),
    /// No key could be drawn.
    #[error("{0}")]
    Seal(#[from] SealError),
}

/// The normalized master key id a stream's KmsKeyId selects (`alias/x` or `key/<uuid>`), or
/// `None` when it has none of the accepted forms.
pub fn resolve_kms_key_id(kms_key_id: &str) -> Option<String> {
    let id = kms_key_id.trim();
    let resource = if let Some(rest) = id.strip_prefix("arn:") {
        // arn:<partition>:kms:<region>:<account>:<alias/x | key/uuid>
        let mut parts = rest.splitn(5, ':');
        let _partition = parts.next()?;
        if parts.next()? != "kms" {
            return None;
        }
        let _region = parts.next()?;
        let _account = parts.next()?;
        parts.next()?
    } else {
        id
    };
    if resource.starts_with("alias/") || resource.starts_with("key/") {
        return valid_key_id(resource).then(|| resource.to_owned());
    }
    is_uuid(resource).then(|| format!("key/{resource}"))
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8usize, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn valid_key_id(id: &str) -> bool {
    let name = id
        .strip_prefix("alias/")
        .or_else(|| id.strip_prefix("key/"));
    id.len() <= MAX_KEY_ID_LEN
        && name.is_some_and(|n| {
            !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/_-.".contains(&b))
        })
}

/// Parses a master key file: `<key-id> <64 hex digits>` per line, `#` comments, blank lines.
pub fn parse_key_file(text: &str) -> Result<BTreeMap<String, [u8; KEY_LEN]>, String> {
    let mut keys = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(id), Some(hex_key), None) = (words.next(), words.next(), words.next()) else {
            return Err(format!(
                "line {}: expected `<key-id> <64 hex digits>`",
                n + 1
            ));
        };
        if !valid_key_id(id) {
            return Err(format!(
                "line {}: key id {id:?} is not `alias/<name>` or `key/<uuid>`",
                n + 1
            ));
        }
        let mut key = [0u8; KEY_LEN];
        hex::decode_to_slice(hex_key, &mut key).map_err(|_| {
            format!(
                "line {}: the key of {id} is not 64 hex digits (a 256-bit key)",
                n + 1
            )
        })?;
        if keys.insert(id.to_owned(), key).is_some() {
            return Err(format!("line {}: key id {id} appears twice", n + 1));
        }
    }
    Ok(keys)
}

/// The text of a new master key file holding `key` as the default key.
fn new_key_file_text(key: &[u8; KEY_LEN]) -> String {
    format!(
        "# kvs master keys (AES-256), one per line: <key-id> <64 hex digits>.\n\
         # Key ids are alias/<name> or key/<uuid>; a stream's KmsKeyId (alias name, alias or key\n\
         # ARN, or key id) selects its key. {DEFAULT_KEY_ID} is the default key and also seals the\n\
         # stream catalog. Keep this file owner-only (mode 0600) and keep a copy: without it the\n\
         # data it protects cannot be read. Add keys with e.g. `openssl rand -hex 32`.\n\
         {DEFAULT_KEY_ID} {}\n",
        hex::encode(key)
    )
}

fn keys_error(path: &Path, message: impl Into<String>) -> ServerError {
    ServerError::Keys {
        path: path.to_owned(),
        message: message.into(),
    }
}

fn read_bounded(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let f = fs::File::open(path)?;
    let mut out = Vec::new();
    f.take(MAX_KEY_FILE_BYTES + 1).read_to_end(&mut out)?;
    if out.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(io::Error::other(format!(
            "larger than {MAX_KEY_FILE_BYTES} bytes"
        )));
    }
    Ok(out)
}

/// Writes `bytes` to `path` through a temporary file (fsynced, renamed, directory fsynced).
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    crate::store::sync_dir(dir)
}

/// Checks (or, in a new data directory, writes) the format marker. Creates `data_dir`.
pub fn check_format(data_dir: &Path) -> Result<(), ServerError> {
    use std::os::unix::fs::DirBuilderExt;
    let dd_err = |source: io::Error| ServerError::DataDir {
        path: data_dir.to_owned(),
        source,
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .map_err(dd_err)?;
    let path = data_dir.join(FORMAT_FILE);
    let format_err = |message: String| ServerError::DataFormat {
        path: data_dir.to_owned(),
        message,
    };
    match fs::read_to_string(&path) {
        Ok(text) => {
            let version = text
                .trim()
                .strip_prefix("kvs-data ")
                .and_then(|v| v.parse::<u32>().ok());
            match version {
                Some(FORMAT_VERSION) => Ok(()),
                Some(v) if v > FORMAT_VERSION => Err(format_err(format!(
                    "it holds data of format {v}, written by a newer kvs (this one reads format {FORMAT_VERSION}): run that kvs version, or pick another --data-dir"
                ))),
                _ => Err(format_err(format!(
                    "{} does not hold a format this kvs reads ({:?}; expected `kvs-data {FORMAT_VERSION}`): move the directory away, or pick another --data-dir",
                    path.display(),
                    text.trim()
                ))),
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let old_streams = fs::read_dir(data_dir.join("streams"))
                .map(|mut d| d.next().is_some())
                .unwrap_or(false);
            if data_dir.join(LEGACY_META_FILE).exists() || old_streams {
                return Err(format_err(format!(
                    "it holds data of an earlier kvs layout (format 1, not encrypted at rest), which this version does not read: move it away or delete it (its data is lost), or pick another --data-dir; kvs then starts a new, encrypted data directory (format {FORMAT_VERSION})"
                )));
            }
            write_atomic(
                &path,
                format!("kvs-data {FORMAT_VERSION}\n").as_bytes(),
                0o600,
            )
            .map_err(dd_err)
        }
        Err(e) => Err(dd_err(e)),
    }
}

/// The master keys and what they protect.
pub struct Vault {
    keys: BTreeMap<String, SealKey>,
    key_file: PathBuf,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .field("key_file", &self.key_file)
            .finish()
    }
}

impl Vault {
    /// Loads the master key file (`key_file`, else `<data_dir>/master-keys`), creating it with a
    /// fresh default key when it does not exist. Refuses a file group or others may access, a
    /// malformed one, and one without the default key.
    pub fn open(data_dir: &Path, key_file: Option<&Path>) -> Result<Vault, ServerError> {
        let path = key_file.map_or_else(|| data_dir.join(KEY_FILE), Path::to_owned);
        if !path.exists() {
            create_key_file(&path)?;
        }
        let mode = fs::metadata(&path)
            .map_err(|e| keys_error(&path, format!("cannot read it: {e}")))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(keys_error(
                &path,
                format!(
                    "group or others may access it (mode {:o}); master keys must be owner-only: run `chmod 600 {}`",
                    mode & 0o777,
                    path.display()
                ),
            ));
        }
        let bytes = read_bounded(&path).map_err(|e| keys_error(&path, e.to_string()))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| keys_error(&path, "it is not UTF-8 text".to_owned()))?;
        let parsed = parse_key_file(&text).map_err(|m| keys_error(&path, m))?;
        if !parsed.contains_key(DEFAULT_KEY_ID) {
            return Err(keys_error(
                &path,
                format!(
                    "it holds no key {DEFAULT_KEY_ID} (the default key, which also seals the stream catalog): add one"
                ),
            ));
        }
        let mut keys = BTreeMap::new();
        for (id, k) in parsed {
            let key = SealKey::new(&k).map_err(|e| keys_error(&path, e.to_string()))?;
            keys.insert(id, key);
        }
        Ok(Vault {
            keys,
            key_file: path,
        })
    }

    /// The master key file.
    pub fn key_file(&self) -> &Path {
        &self.key_file
    }

    /// The master key a KmsKeyId selects: (its normalized id, the key).
    pub fn master(&self, kms_key_id: &str) -> Result<(String, &SealKey), KeyError> {
        resolve_kms_key_id(kms_key_id)
            .and_then(|id| self.keys.get(&id).map(|k| (id, k)))
            .ok_or_else(|| KeyError::UnknownKey {
                kms_key_id: kms_key_id.to_owned(),
                key_file: self.key_file.clone(),
            })
    }

    /// Creates the data key of the stream in `dir` (blocking): 32 random bytes wrapped under the
    /// master key `kms_key_id` selects, written to `<dir>/data-key` (fsynced, never replacing an
    /// existing one) before it is returned.
    pub fn create_data_key(
        &self,
        dir: &Path,
        identity: Vec<u8>,
        kms_key_id: &str,
    ) -> Result<DataKey, KeyError> {
        let (key_id, master) = self.master(kms_key_id)?;
        let mut raw = [0u8; KEY_LEN];
        os_random(&mut raw)?;
        let wrapped = master.seal(&data_key_aad(&identity, &key_id), &raw)?;
        let text = format!(
            "{DATA_KEY_HEAD}\nmaster {key_id}\nwrapped {}\n",
            hex::encode(wrapped)
        );
        fs::create_dir_all(dir)?;
        let path = dir.join(DATA_KEY_FILE);
        let tmp = dir.join(format!("{DATA_KEY_FILE}.tmp"));
        crate::store::write_private(&tmp, text.as_bytes())?;
        // A hard link fails when the name exists: a key in use is never replaced.
        fs::hard_link(&tmp, &path)?;
        fs::remove_file(&tmp)?;
        crate::store::sync_dir(dir)?;
        if let Some(parent) = dir.parent() {
            crate::store::sync_dir(parent)?;
        }
        Ok(DataKey::new(&raw, identity)?)
    }

    /// Loads the data key of the stream in `dir`; `None` when it has none yet.
    pub fn load_data_key(
        &self,
        dir: &Path,
        identity: Vec<u8>,
    ) -> Result<Option<DataKey>, KeyError> {
        let path = dir.join(DATA_KEY_FILE);
        let bytes = match read_bounded(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let malformed = |message: &str| KeyError::Malformed {
            path: path.clone(),
            message: message.to_owned(),
        };
        let text = String::from_utf8(bytes).map_err(|_| malformed("not UTF-8"))?;
        let mut lines = text.lines();
        if lines.next() != Some(DATA_KEY_HEAD) {
            return Err(malformed("unknown header line"));
        }
        let key_id = lines
            .next()
            .and_then(|l| l.strip_prefix("master "))
            .ok_or_else(|| malformed("no `master` line"))?;
        let wrapped = lines
            .next()
            .and_then(|l| l.strip_prefix("wrapped "))
            .and_then(|h| hex::decode(h).ok())
            .ok_or_else(|| malformed("no `wrapped` line of hex digits"))?;
        let master = self
            .keys
            .get(key_id)
            .ok_or_else(|| KeyError::MissingMasterKey {
                path: path.clone(),
                key_id: key_id.to_owned(),
                key_file: self.key_file.clone(),
            })?;
        let raw = master
            .open(&data_key_aad(&identity, key_id), wrapped)
            .map_err(|_| KeyError::Unwrap {
                path: path.clone(),
                key_id: key_id.to_owned(),
                key_file: self.key_file.clone(),
            })?;
        Ok(Some(DataKey::new(&raw, identity)?))
    }

    fn catalog_key(&self) -> Result<&SealKey, io::Error> {
        self.keys
            .get(DEFAULT_KEY_ID)
            .ok_or_else(|| io::Error::other(format!("no master key {DEFAULT_KEY_ID}")))
    }

    /// Reads and opens the stream catalog; `None` in a new data directory.
    pub fn read_catalog(&self, data_dir: &Path) -> Result<Option<Vec<u8>>, ServerError> {
        let path = data_dir.join(CATALOG_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(ServerError::DataDir { path, source }),
        };
        let sealed = bytes
            .strip_prefix(CATALOG_MAGIC.as_slice())
            .ok_or_else(|| ServerError::DataFormat {
                path: path.clone(),
                message: "it is not a kvs stream catalog".to_owned(),
            })?;
        let key = self.catalog_key().map_err(|source| ServerError::DataDir {
            path: path.clone(),
            source,
        })?;
        key.open(CATALOG_AAD, sealed.to_vec())
            .map(Some)
            .map_err(|_| {
                keys_error(
                    &self.key_file,
                    format!(
                        "it does not open this data directory: the stream catalog {} was sealed under another {DEFAULT_KEY_ID} key (or was altered); start with the key file the data directory was created with",
                        path.display()
                    ),
                )
            })
    }

    /// Seals and writes the stream catalog (temp file, fsync, rename, directory fsync).
    pub fn write_catalog(&self, data_dir: &Path, plain: &[u8]) -> io::Result<()> {
        let sealed = self
            .catalog_key()?
            .seal(CATALOG_AAD, plain)
            .map_err(io::Error::other)?;
        let mut bytes = Vec::with_capacity(CATALOG_MAGIC.len() + sealed.len());
        bytes.extend_from_slice(CATALOG_MAGIC);
        bytes.extend_from_slice(&sealed);
        write_atomic(&data_dir.join(CATALOG_FILE), &bytes, 0o600)
    }
}

/// At start: loads the data key of `stream` (when it has one) into [`crate::state::Stream::key`].
/// A data key whose master key is missing, or that does not open, refuses the start.
pub(crate) fn load_stream_key(
    vault: &Vault,
    stream: &crate::state::Stream,
) -> Result<Option<std::sync::Arc<DataKey>>, ServerError> {
    let name = crate::state::lock(&stream.meta).name.clone();
    match vault.load_data_key(&stream.dir, stream.identity()) {
        // Stored media without its data key must not be papered over: a key minted now would
        // split the stream across two keys and the old media would only fail when read.
        Ok(None) => match crate::store::stored_media_file(&stream.dir) {
            Some(file) => Err(keys_error(
                &vault.key_file,
                format!(
                    "stream {name}: {} is missing but {} holds its media; restore the data-key \
                     file from a backup (or move the stream directory away to drop its data)",
                    stream.dir.join(DATA_KEY_FILE).display(),
                    file.display()
                ),
            )),
            None => Ok(None),
        },
        Ok(Some(k)) => {
            let k = std::sync::Arc::new(k);
            let _ = stream.key.set(k.clone());
            Ok(Some(k))
        }
        Err(KeyError::Io(source)) => Err(ServerError::DataDir {
            path: stream.dir.join(DATA_KEY_FILE),
            source,
        }),
        Err(e) => Err(keys_error(&vault.key_file, format!("stream {name}: {e}"))),
    }
}

fn data_key_aad(identity: &[u8], key_id: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(DATA_KEY_AAD.len() + identity.len() + key_id.len());
    v.extend_from_slice(DATA_KEY_AAD);
    v.extend_from_slice(identity);
    v.extend_from_slice(key_id.as_bytes());
    v
}

/// Creates a master key file at `path` (O_EXCL, mode 0600, fsynced with its directory) holding
/// a fresh default key. A file created meanwhile by someone else is left as it is.
fn create_key_file(path: &Path) -> Result<(), ServerError> {
    let mut key = [0u8; KEY_LEN];
    os_random(&mut key).map_err(|e| keys_error(path, format!("cannot generate a key: {e}")))?;
    let create = || -> io::Result<()> {
        let mut f = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
            Err(e) => return Err(e),
        };
        f.write_all(new_key_file_text(&key).as_bytes())?;
        f.sync_all()?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        crate::store::sync_dir(dir)
    };
    create().map_err(|e| keys_error(path, format!("cannot create it: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kms_key_ids_resolve() {
        let uuid = "1234abcd-12ab-34cd-56ef-1234567890ab";
        for (input, want) in [
            (
                "alias/aws/kinesisvideo",
                Some("alias/aws/kinesisvideo".to_owned()),
            ),
            (
                "arn:aws:kms:us-east-1:000000000000:alias/aws/kinesisvideo",
                Some("alias/aws/kinesisvideo".to_owned()),
            ),
            (
                &format!("arn:aws:kms:us-west-2:111122223333:key/{uuid}"),
                Some(format!("key/{uuid}")),
            ),
            (uuid, Some(format!("key/{uuid}"))),
            ("alias/", None),
            ("nonsense", None),
            ("arn:aws:s3:::bucket", None),
            ("alias/../../etc", Some("alias/../../etc".to_owned())),
        ] {
            assert_eq!(resolve_kms_key_id(input), want, "{input}");
        }
    }

    #[test]
    fn key_files_parse_and_refuse_bad_lines() {
        let k = "ab".repeat(32);
        let text = format!("# c\n\nalias/aws/kinesisvideo {k}\n  key/x {k}  \n");
        let keys = parse_key_file(&text).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys["key/x"], [0xab; 32]);
        assert!(parse_key_file(&format!("alias/a {}", "ab".repeat(31))).is_err());
        assert!(parse_key_file(&format!("plain {k}")).is_err());
        assert!(parse_key_file(&format!("alias/a {k} extra")).is_err());
        assert!(parse_key_file(&format!("alias/a {k}\nalias/a {k}")).is_err());
        assert!(parse_key_file(&new_key_file_text(&[1; 32])).is_ok());
    }
}
