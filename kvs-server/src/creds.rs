//! Key pairs: the development pair generated at first start (kept in the data directory with
//! owner-only permissions), or the pairs of a shared-credentials file, each with its access
//! policy (`kvs_allow`, `kvs_streams`, `kvs_deny`, `kvs_expiration`, `kvs_policy_file`).

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::SystemTime;

use kvs_core::credentials::{FileKind, ProfileSet, parse_rfc3339};
use kvs_core::sigv4::StaticCredentials;

use crate::ServerError;
use crate::policy::{AccessControl, MAX_POLICY_DOCUMENT, Policy, Principal};

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

/// The key pairs of a credentials file and what each may do.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LoadedCredentials {
    /// The accepted key pairs (with their session token and expiry).
    pub keys: StaticCredentials,
    /// Each key pair's profile name and policy.
    pub access: AccessControl,
    /// The pair the banner shows (the `default` profile's, else the first profile's).
    pub first: DevCredentials,
}

/// The per-profile keys kvs reads besides the AWS ones; any other `kvs_*` key is an error.
pub const POLICY_KEYS: &[&str] = &[
    "kvs_allow",
    "kvs_deny",
    "kvs_streams",
    "kvs_expiration",
    "kvs_policy_file",
];

/// Reads every `aws_access_key_id` / `aws_secret_access_key` pair of an INI credentials file.
/// A profile with an `aws_session_token` stands for temporary credentials (STS, the IoT
/// credentials provider): requests signed with that key must carry that token.
///
/// Each profile may also restrict its key pair (see [`crate::policy`]):
///
/// | key | value | default |
/// |---|---|---|
/// | `kvs_allow` | actions, comma-separated: `kinesisvideo:GetMedia`, `kinesisvideo:Describe*`, `kinesisvideo:*` | `kinesisvideo:*` |
/// | `kvs_streams` | stream-name globs the allowed actions apply to: `cam-*, lobby` | `*` |
/// | `kvs_deny` | actions refused on every stream, whatever is allowed | none |
/// | `kvs_expiration` | RFC 3339 time after which the key gets `ExpiredTokenException` | never |
/// | `kvs_policy_file` | an IAM policy JSON document (path relative to this file) whose statements are added | none |
///
/// A profile without any of them keeps full access. Errors name the file, the profile and the
/// line: an unknown `kvs_*` key, an action that is not `kinesisvideo:` plus a known operation
/// (or a wildcard matching one), a bad stream pattern or time, an unreadable or invalid policy
/// document, policy keys in a profile without a key pair, or one access key id in two profiles
/// with different policies. Other keys (`region`, ...) are left alone, as before.
pub fn load_credentials_file(path: &Path) -> Result<LoadedCredentials, ServerError> {
    let err = |message: String| ServerError::Credentials {
        path: path.to_owned(),
        message,
    };
    let text = fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let set = ProfileSet::parse(&text, FileKind::Credentials).map_err(|e| err(e.to_string()))?;
    let mut store = StaticCredentials::new();
    let mut access = AccessControl::new();
    let mut seen: HashMap<String, (String, Policy, Option<SystemTime>)> = HashMap::new();
    let mut first: Option<DevCredentials> = None;
    let mut names: Vec<&str> = set.names().collect();
    // The default profile (when present) is the one the banner shows.
    names.sort_by_key(|n| *n != "default");
    for name in names {
        let Some(p) = set.get(name) else { continue };
        // "profile [name], line N (key): reason"
        let at = |key: &str, reason: String| {
            let line = line_of(&text, name, key)
                .map(|l| format!(", line {l}"))
                .unwrap_or_default();
            err(format!("profile [{name}]{line} ({key}): {reason}"))
        };
        for (key, _) in p.properties() {
            if key.starts_with("kvs_") && !POLICY_KEYS.contains(&key) {
                return Err(at(
                    key,
                    format!(
                        "unknown key; kvs reads {} (check the spelling)",
                        POLICY_KEYS.join(", ")
                    ),
                ));
            }
        }
        let (Some(id), Some(secret)) = (p.get("aws_access_key_id"), p.get("aws_secret_access_key"))
        else {
            if let Some(key) = POLICY_KEYS.iter().find(|k| p.get(k).is_some()) {
                return Err(at(
                    key,
                    "policy keys need a key pair in the same profile: add aws_access_key_id and aws_secret_access_key".into(),
                ));
            }
            continue;
        };
        let document = p.get("kvs_policy_file");
        let mut policy = Policy::from_profile_keys(
            p.get("kvs_allow"),
            p.get("kvs_deny"),
            p.get("kvs_streams"),
            document.is_some(),
        )
        .map_err(|(key, e)| at(key, e.to_string()))?;
        if let Some(file) = document {
            let doc_path = path.parent().unwrap_or(Path::new(".")).join(file);
            let doc = read_policy_document(&doc_path)
                .map_err(|e| at("kvs_policy_file", format!("{}: {e}", doc_path.display())))?;
            policy.extend(doc);
        }
        let expires_at = p
            .get("kvs_expiration")
            .map(parse_rfc3339)
            .transpose()
            .map_err(|e| {
                at(
                    "kvs_expiration",
                    format!("{e}; write an RFC 3339 time such as 2030-01-31T23:59:59Z"),
                )
            })?;
        if let Some((other, other_policy, other_expiry)) = seen.get(id) {
            if (other_policy, other_expiry) != (&policy, &expires_at) {
                return Err(at(
                    "aws_access_key_id",
                    format!(
                        "access key id {id} is also in profile [{other}] with a different policy or expiration; give each key pair one profile"
                    ),
                ));
            }
            continue;
        }
        seen.insert(id.to_owned(), (name.to_owned(), policy.clone(), expires_at));
        let token = p.get("aws_session_token").map(str::to_owned);
        store.insert(id, secret, token, expires_at);
        access.insert(
            id,
            Principal {
                name: name.to_owned(),
                policy,
            },
        );
        if first.is_none() {
            first = Some(DevCredentials {
                access_key_id: id.to_owned(),
                secret_access_key: secret.to_owned(),
            });
        }
    }
    let first =
        first.ok_or_else(|| err("no aws_access_key_id / aws_secret_access_key pair".into()))?;
    Ok(LoadedCredentials {
        keys: store,
        access,
        first,
    })
}

/// Reads and parses an IAM policy document (at most [`MAX_POLICY_DOCUMENT`] bytes).
fn read_policy_document(path: &Path) -> Result<Policy, String> {
    let file = fs::File::open(path).map_err(|e| e.to_string())?;
    let mut text = String::new();
    let limit = u64::try_from(MAX_POLICY_DOCUMENT).unwrap_or(u64::MAX) + 1;
    file.take(limit)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    Policy::from_iam_json(&text).map_err(|e| e.to_string())
}

/// The 1-based line of the last `key =` of section `[profile]` (later values win, as in the
/// parser).
fn line_of(text: &str, profile: &str, key: &str) -> Option<usize> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut section: Option<&str> = None;
    let mut found = None;
    for (i, raw) in text.lines().enumerate() {
        let t = raw.trim();
        if let Some(rest) = t.strip_prefix('[') {
            section = rest.split_once(']').map(|(n, _)| n.trim());
            continue;
        }
        if section == Some(profile)
            && !raw.starts_with([' ', '\t'])
            && t.split_once('=')
                .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case(key))
        {
            found = Some(i + 1);
        }
    }
    found
}

/// Loads the development key pair from `data_dir`, generating it (from OS randomness) at the
/// first start. The file is created with mode 0600.
pub fn dev_credentials(data_dir: &Path) -> Result<LoadedCredentials, ServerError> {
    dev_credentials_with(data_dir, os_random)
}

/// [`dev_credentials`] with the random source given: a failing source fails start-up (a
/// guessable secret is never written).
fn dev_credentials_with(data_dir: &Path, fill: Fill) -> Result<LoadedCredentials, ServerError> {
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
            crate::store::write_private(&tmp, text.as_bytes())?;
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
        let loaded = dev_credentials_with(&dir, os_random).unwrap();
        assert_eq!(loaded.first.secret_access_key.len(), 40);
        assert_eq!(loaded.access.restricted(), 0);
        fs::remove_dir_all(&dir).unwrap();
    }
}
