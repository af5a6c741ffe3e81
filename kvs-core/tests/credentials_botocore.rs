//! Cross-check of profile and environment resolution against botocore (the AWS CLI's engine).
//!
//! Needs Python with botocore (`KVS_PYTHON`, default `python3`); skipped when missing unless
//! `KVS_REQUIRE_TOOLS=1`.

use std::path::PathBuf;
use std::process::Command;

use kvs_core::credentials::{
    CredentialSource, CredentialsError, Explicit, SharedFiles, region_from_env, resolve,
    resolve_profile, shared_file_paths,
};

const CONFIG: &str = "# comment
; comment
[default]
region = us-west-2

[profile dev]
region=eu-west-1
aws_access_key_id = AKIDCONFIG
aws_secret_access_key = secret;with;semicolons
s3 =
  max_concurrent_requests = 20
  aws_access_key_id = NESTED_MUST_NOT_LEAK

[region-only]
region = ap-south-1

[profile region-only]
region = ap-southeast-2

[profile nested]
region = ca-central-1
s3 =
  aws_access_key_id = NESTED
  aws_secret_access_key = NESTED
";

const CREDENTIALS: &str = "[default]
aws_access_key_id=AKIDDEFAULT
aws_secret_access_key=SECRETDEFAULT
[dev]
aws_access_key_id = AKIDDEV
aws_secret_access_key = SECRETDEV
aws_session_token = TOKENDEV
[profile dev]
aws_access_key_id = NOT_DEV
aws_secret_access_key = NOT_DEV
[half]
aws_access_key_id = AKIDHALF
";

const SCRIPT: &str = r#"
import json, botocore.session, botocore.exceptions as E
try:
    s = botocore.session.get_session()
    c = s.get_credentials()
    out = {"akid": c.access_key if c else None, "secret": c.secret_key if c else None,
           "token": c.token if c else None, "method": c.method if c else None,
           "region": s.get_config_variable("region")}
except E.ProfileNotFound:
    out = {"error": "ProfileNotFound"}
except E.PartialCredentialsError:
    out = {"error": "Partial"}
print(json.dumps(out))
"#;

fn python() -> Option<String> {
    let python = std::env::var("KVS_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import botocore"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    if std::env::var("KVS_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("python with botocore ({python}) is required (KVS_REQUIRE_TOOLS=1)");
    }
    println!("skipping: python with botocore not found ({python}); set KVS_PYTHON");
    None
}

#[test]
fn profile_resolution_matches_botocore() {
    let Some(python) = python() else { return };
    let dir: PathBuf =
        std::env::temp_dir().join(format!("kvs-credentials-botocore-{}", std::process::id()));
    std::fs::create_dir_all(dir.join(".aws")).unwrap();
    std::fs::write(dir.join(".aws/config"), CONFIG).unwrap();
    std::fs::write(dir.join(".aws/credentials"), CREDENTIALS).unwrap();
    let files = SharedFiles {
        config: Some(CONFIG),
        credentials: Some(CREDENTIALS),
    };

    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("AWS_PROFILE", "dev")],
        vec![("AWS_PROFILE", "region-only")],
        vec![("AWS_PROFILE", "nested")],
        vec![("AWS_PROFILE", "half")],
        vec![("AWS_PROFILE", "ghost")],
        vec![
            ("AWS_PROFILE", "dev"),
            ("AWS_ACCESS_KEY_ID", "AKIDENV"),
            ("AWS_SECRET_ACCESS_KEY", "S"),
        ],
        // botocore reads only AWS_DEFAULT_REGION; kvs also honours AWS_REGION first, as the other
        // AWS SDKs do, so AWS_REGION is left out of the comparison.
        vec![("AWS_PROFILE", "dev"), ("AWS_DEFAULT_REGION", "us-east-1")],
        vec![
            ("AWS_DEFAULT_REGION", "sa-east-1"),
            ("AWS_SESSION_TOKEN", "T"),
            ("AWS_ACCESS_KEY_ID", "A"),
            ("AWS_SECRET_ACCESS_KEY", "S"),
        ],
    ];
    for env in cases {
        let mut cmd = Command::new(&python);
        cmd.env_clear()
            .env("HOME", &dir)
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .args(["-c", SCRIPT]);
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let theirs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

        let paths = shared_file_paths(env.as_slice(), Some(&dir));
        assert_eq!(paths.config, Some(dir.join(".aws").join("config")));
        let ours = resolve(&Explicit::default(), env.as_slice(), &files);
        match theirs.get("error").and_then(|e| e.as_str()) {
            Some("ProfileNotFound") => {
                assert!(
                    matches!(ours, Err(CredentialsError::ProfileNotFound { .. })),
                    "{env:?}: {ours:?}"
                );
                continue;
            }
            Some("Partial") => {
                assert!(
                    matches!(ours, Err(CredentialsError::IncompleteProfile { .. })),
                    "{env:?}: {ours:?}"
                );
                continue;
            }
            _ => {}
        }
        let region = region_from_env(env.as_slice()).or_else(|| {
            resolve_profile(&paths.profile, &files)
                .unwrap()
                .and_then(|p| p.region)
        });
        assert_eq!(theirs["region"].as_str(), region.as_deref(), "{env:?}");
        match ours {
            Ok(r) => {
                assert_eq!(
                    theirs["akid"].as_str(),
                    Some(r.credentials.access_key_id()),
                    "{env:?}"
                );
                assert_eq!(
                    theirs["secret"].as_str(),
                    Some(r.credentials.secret_access_key())
                );
                assert_eq!(
                    theirs["token"].as_str(),
                    r.credentials.session_token(),
                    "{env:?}"
                );
                assert_eq!(r.region, region);
                let method = theirs["method"].as_str().unwrap();
                match r.source {
                    CredentialSource::Environment => assert_eq!(method, "env"),
                    CredentialSource::Profile(_) => assert_eq!(method, "shared-credentials-file"),
                    other => panic!("unexpected source {other:?}"),
                }
            }
            Err(e) => {
                assert!(
                    theirs["akid"].is_null(),
                    "{env:?}: botocore found credentials, we said {e}"
                );
                assert!(matches!(e, CredentialsError::NoCredentials { .. }));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
