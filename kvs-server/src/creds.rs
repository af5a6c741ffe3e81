//! Key pairs: the development pair generated at first start (kept in the data directory with
//! owner-only permissions), or the pairs of a shared-credentials file.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use kvs_core::credentials::{FileKind, ProfileSet};
use kvs_core::sigv4::StaticCredentials;

use crate::ServerError;

/// A key pair the server accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevCredentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
}

const DEV_FILE: &str = "credentials";

/// Fills a buffer from the OS random source, or says why it could not.
type Fill = fn(&mut [u8]) -> Result<(), String>;

fn os_random(buf: &mut [u8]) -> Result<(), String> {
    getrandom::fill(buf).map_err(|e| format!("the OS random source failed: {e}"))
}

fn random_string(len: usize, alphabet: &[u8], fill: Fill) -> Result<String, String> {
    let mut raw = vec![0u8; len];
    fill(&mut raw)?;
    Ok(raw
        .iter()
        .map(|b| {
            char::from(
                alphabet
                    .get(usize::from(*b) % alphabet.len())
                    .copied()
                    .unwrap_or(b'A'),
            )
        })
        .collect())
}

/// Reads every `aws_access_key_id` / `aws_secret_access_key` pair of an INI credentials file.
/// A profile with an `aws_session_token` stands for temporary credentials (STS, the IoT
/// credentials provider): requests signed with that key must carry that token.
pub fn load_credentials_file(
    path: &Path,
) -> Result<(StaticCredentials, DevCredentials), ServerError> {
    let err = |message: String| ServerError::Credentials {
        path: path.to_owned(),
        message,
    };
    let text = fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let set = ProfileSet::parse(&text, FileKind::Credentials).map_err(|e| err(e.to_string()))?;
    let mut store = StaticCredentials::new();
    let mut first: Option<DevCredentials> = None;
    let mut names: Vec<&str> = set.names().collect();
    // The default profile (when present) is the one the banner shows.
    names.sort_by_key(|n| *n != "default");
    for name in names {
        let Some(p) = set.get(name) else { continue };
        if let (Some(id), Some(secret)) =
            (p.get("aws_access_key_id"), p.get("aws_secret_access_key"))
        {
            let token = p.get("aws_session_token").map(str::to_owned);
            store.insert(id, secret, token, None);
            if first.is_none() {
                first = Some(DevCredentials {
                    access_key_id: id.to_owned(),
                    secret_access_key: secret.to_owned(),
                });
            }
        }
    }
    let first =
        first.ok_or_else(|| err("no aws_access_key_id / aws_secret_access_key pair".into()))?;
    Ok((store, first))
}

/// Loads the development key pair from `data_dir`, generating it (from OS randomness) at the
/// first start. The file is created with mode 0600.
pub fn dev_credentials(
    data_dir: &Path,
) -> Result<(StaticCredentials, DevCredentials), ServerError> {
    dev_credentials_with(data_dir, os_random)
}

/// [`dev_credentials`] with the random source given: a failing source fails start-up (a
/// guessable secret is never written).
fn dev_credentials_with(
    data_dir: &Path,
    fill: Fill,
) -> Result<(StaticCredentials, DevCredentials), ServerError> {
    let path = data_dir.join(DEV_FILE);
    if !path.exists() {
        let fail = |message: String| ServerError::Credentials {
            path: path.clone(),
            message: format!("cannot generate the development key pair: {message}"),
        };
        let id = format!(
            "AKIAKVS{}",
            random_string(13, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", fill).map_err(fail)?
        );
        let secret = random_string(
            40,
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
            fill,
        )
        .map_err(fail)?;
        let text = format!(
            "# Development key pair of this kvs server (generated at first start).\n[default]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n"
        );
        let tmp = data_dir.join(format!("{DEV_FILE}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut f = fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            crate::store::sync_dir(data_dir)
        };
        write().map_err(|e| ServerError::Credentials {
            path: path.clone(),
            message: e.to_string(),
        })?;
    }
    // Keep it owner-only even if someone loosened it.
    let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o600));
    load_credentials_file(&path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_random_source_fails_startup_and_writes_nothing() {
        let dir = std::env::temp_dir().join(format!("kvs-creds-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let broken: Fill = |_| Err("no entropy".into());
        let e = dev_credentials_with(&dir, broken).unwrap_err();
        assert!(e.to_string().contains("no entropy"), "{e}");
        assert!(!dir.join(DEV_FILE).exists());
        let (_, pair) = dev_credentials_with(&dir, os_random).unwrap();
        assert_eq!(pair.secret_access_key.len(), 40);
        fs::remove_dir_all(&dir).unwrap();
    }
}
