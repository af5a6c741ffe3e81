//! Credentials: shared-file parsing, environment, precedence, IoT response, timestamps, redaction.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kvs_core::credentials::iot::{self, IotError};
use kvs_core::credentials::{
    CredentialSource, Credentials, CredentialsError, Explicit, FileKind, ProfileSet, SharedFiles,
    credentials_from_env, endpoint_from_env, format_rfc3339, parse_rfc3339, region_from_env,
    resolve, resolve_profile, shared_file_paths,
};

const CONFIG: &str = "\u{feff}# leading comment
; another comment
[default]
region = us-west-2
output=json

[profile dev]
region   =   eu-west-1   # trailing comment
aws_access_key_id = AKIDCONFIG
aws_secret_access_key = secret;with;semicolons
s3 =
  max_concurrent_requests = 20
  aws_access_key_id = NESTED_MUST_NOT_LEAK
endpoint_url = http://127.0.0.1:4567

[region-only]
region = ap-south-1

[profile region-only]
region = ap-southeast-2

[sso-session corp]
sso_region = us-east-1

[services local]
kinesis_video =
  endpoint_url = http://localhost:1

[profile empty]
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
AWS_ACCESS_KEY_ID = AKIDHALF
";

#[test]
fn config_file_sections() {
    let set = ProfileSet::parse(CONFIG, FileKind::Config).unwrap();
    let names: Vec<&str> = set.names().collect();
    assert_eq!(names, vec!["default", "dev", "empty", "region-only"]);
    let dev = set.get("dev").unwrap();
    assert_eq!(dev.get("region"), Some("eu-west-1"));
    assert_eq!(dev.get("aws_access_key_id"), Some("AKIDCONFIG"));
    // `;` without whitespace before it is part of the value.
    assert_eq!(
        dev.get("aws_secret_access_key"),
        Some("secret;with;semicolons")
    );
    assert_eq!(dev.get("s3"), Some(""));
    assert_eq!(dev.get("max_concurrent_requests"), None);
    assert_eq!(dev.get("endpoint_url"), Some("http://127.0.0.1:4567"));
    // `[region-only]` in the config file is not a profile; `[profile region-only]` is.
    assert_eq!(
        set.get("region-only").unwrap().get("region"),
        Some("ap-southeast-2")
    );
    assert_eq!(set.get("default").unwrap().get("output"), Some("json"));
    assert!(set.get("corp").is_none() && set.get("sso-session corp").is_none());
    assert!(set.get("local").is_none());
    assert_eq!(set.get("empty").unwrap().properties().count(), 0);
}

#[test]
fn credentials_file_sections_are_literal() {
    let set = ProfileSet::parse(CREDENTIALS, FileKind::Credentials).unwrap();
    assert_eq!(
        set.get("dev").unwrap().get("aws_access_key_id"),
        Some("AKIDDEV")
    );
    // In the credentials file `[profile dev]` is a profile literally named "profile dev".
    assert_eq!(
        set.get("profile dev").unwrap().get("aws_access_key_id"),
        Some("NOT_DEV")
    );
    // Keys are case-insensitive.
    assert_eq!(
        set.get("half").unwrap().get("aws_access_key_id"),
        Some("AKIDHALF")
    );
}

#[test]
fn profile_default_beats_plain_default_in_config() {
    let text = "[default]\nregion = a\n[profile default]\nregion = b\n[default]\nregion = c\n";
    let set = ProfileSet::parse(text, FileKind::Config).unwrap();
    assert_eq!(set.get("default").unwrap().get("region"), Some("b"));
    let text = "[default]\nregion = a\n[default]\nregion = c\nextra = 1\n";
    let set = ProfileSet::parse(text, FileKind::Config).unwrap();
    assert_eq!(set.get("default").unwrap().get("region"), Some("c"));
    assert_eq!(set.get("default").unwrap().get("extra"), Some("1"));
}

#[test]
fn parse_errors_name_the_line() {
    let cases = [
        ("region = x\n", 1, "before any section"),
        ("[default]\n\n[dev\n", 3, "no closing ']'"),
        ("[default]\nregion\n", 2, "key = value"),
        ("[default]\n = x\n", 2, "empty key"),
        ("[default] junk\n", 1, "after a section header"),
    ];
    for (text, line, needle) in cases {
        let err = ProfileSet::parse(text, FileKind::Credentials).unwrap_err();
        assert_eq!(err.line, line, "{text:?}");
        assert_eq!(err.file, FileKind::Credentials);
        assert!(err.to_string().contains(needle), "{err}");
        assert!(err.to_string().contains(&format!("line {line}")), "{err}");
    }
    // A header comment and CRLF line endings are fine.
    let set = ProfileSet::parse("[a] # c\r\nk = v\r\n", FileKind::Credentials).unwrap();
    assert_eq!(set.get("a").unwrap().get("k"), Some("v"));
}

#[test]
fn resolve_profile_merges_files() {
    let files = SharedFiles {
        config: Some(CONFIG),
        credentials: Some(CREDENTIALS),
    };
    let dev = resolve_profile("dev", &files).unwrap().unwrap();
    let creds = dev.credentials.unwrap();
    assert_eq!(creds.access_key_id(), "AKIDDEV"); // credentials file wins
    assert_eq!(creds.secret_access_key(), "SECRETDEV");
    assert_eq!(creds.session_token(), Some("TOKENDEV"));
    assert_eq!(dev.region.as_deref(), Some("eu-west-1"));
    assert_eq!(dev.endpoint_url.as_deref(), Some("http://127.0.0.1:4567"));
    let region_only = resolve_profile("region-only", &files).unwrap().unwrap();
    assert_eq!(region_only.credentials, None);
    assert_eq!(region_only.region.as_deref(), Some("ap-southeast-2"));
    assert_eq!(resolve_profile("nope", &files).unwrap(), None);
    assert_eq!(
        resolve_profile("half", &files).unwrap_err(),
        CredentialsError::IncompleteProfile {
            profile: "half".into(),
            present: "aws_access_key_id",
            missing: "aws_secret_access_key"
        }
    );
}

#[test]
fn environment_credentials_region_endpoint() {
    let env = [
        ("AWS_ACCESS_KEY_ID", "AKIDENV"),
        ("AWS_SECRET_ACCESS_KEY", "SECRETENV"),
        ("AWS_SECURITY_TOKEN", "LEGACY"),
        ("AWS_CREDENTIAL_EXPIRATION", "2026-11-25T12:00:00Z"),
        ("AWS_DEFAULT_REGION", "us-east-2"),
        ("AWS_ENDPOINT_URL", "http://global:1"),
    ];
    let c = credentials_from_env(&env).unwrap().unwrap();
    assert_eq!(c.access_key_id(), "AKIDENV");
    assert_eq!(c.session_token(), Some("LEGACY"));
    assert_eq!(c.expiry_epoch_secs(), Some(1_795_608_000));
    assert_eq!(region_from_env(&env).as_deref(), Some("us-east-2"));
    assert_eq!(endpoint_from_env(&env).as_deref(), Some("http://global:1"));

    let mut map: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    map.insert("AWS_SESSION_TOKEN".into(), "TOKEN".into());
    map.insert("AWS_REGION".into(), "eu-central-1".into());
    map.insert(
        "AWS_ENDPOINT_URL_KINESIS_VIDEO".into(),
        "http://kvs:2".into(),
    );
    assert_eq!(
        credentials_from_env(&map).unwrap().unwrap().session_token(),
        Some("TOKEN")
    );
    assert_eq!(region_from_env(&map).as_deref(), Some("eu-central-1"));
    assert_eq!(endpoint_from_env(&map).as_deref(), Some("http://kvs:2"));
    map.insert("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS".into(), "true".into());
    assert_eq!(endpoint_from_env(&map), None);

    assert_eq!(
        credentials_from_env(&[("AWS_ACCESS_KEY_ID", "")]).unwrap(),
        None
    );
    let err = credentials_from_env(&[("AWS_ACCESS_KEY_ID", "A")]).unwrap_err();
    assert!(
        err.to_string().contains("AWS_SECRET_ACCESS_KEY is not"),
        "{err}"
    );
    let err = credentials_from_env(&[
        ("AWS_ACCESS_KEY_ID", "A"),
        ("AWS_SECRET_ACCESS_KEY", "S"),
        ("AWS_CREDENTIAL_EXPIRATION", "tomorrow"),
    ])
    .unwrap_err();
    assert!(
        matches!(err, CredentialsError::BadExpiration { .. }),
        "{err}"
    );
}

#[test]
fn shared_file_paths_from_env_and_home() {
    let home = Path::new("/home/cam");
    let p = shared_file_paths(&[("HOME", "/ignored")], Some(home));
    assert_eq!(p.config, Some(PathBuf::from("/home/cam/.aws/config")));
    assert_eq!(
        p.credentials,
        Some(PathBuf::from("/home/cam/.aws/credentials"))
    );
    assert_eq!(p.profile, "default");
    assert_eq!(p.profile_variable, None);
    let env = [
        ("AWS_CONFIG_FILE", "~/cfg/aws.ini"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/etc/kvs/creds"),
        ("AWS_DEFAULT_PROFILE", "legacy"),
        ("AWS_PROFILE", "cam"),
    ];
    let p = shared_file_paths(&env, Some(home));
    assert_eq!(p.config, Some(PathBuf::from("/home/cam/cfg/aws.ini")));
    assert_eq!(p.credentials, Some(PathBuf::from("/etc/kvs/creds")));
    assert_eq!(
        (p.profile.as_str(), p.profile_variable),
        ("cam", Some("AWS_PROFILE"))
    );
    let p = shared_file_paths(&[("AWS_DEFAULT_PROFILE", "legacy")], None);
    assert_eq!((p.config, p.credentials), (None, None));
    assert_eq!(p.profile, "legacy");
}

#[test]
fn precedence_explicit_env_profile() {
    let files = SharedFiles {
        config: Some(CONFIG),
        credentials: Some(CREDENTIALS),
    };
    let env_creds = [
        ("AWS_ACCESS_KEY_ID", "AKIDENV"),
        ("AWS_SECRET_ACCESS_KEY", "SECRETENV"),
    ];

    // Profile only.
    let r = resolve(&Explicit::default(), &[("AWS_PROFILE", "dev")], &files).unwrap();
    assert_eq!(r.source, CredentialSource::Profile("dev".into()));
    assert_eq!(r.credentials.access_key_id(), "AKIDDEV");
    assert_eq!(r.region.as_deref(), Some("eu-west-1"));
    assert_eq!(r.endpoint_url.as_deref(), Some("http://127.0.0.1:4567"));

    // Environment beats the profile; the profile still supplies the region.
    let r = resolve(&Explicit::default(), &env_creds, &files).unwrap();
    assert_eq!(r.source, CredentialSource::Environment);
    assert_eq!(r.credentials.access_key_id(), "AKIDENV");
    assert_eq!(r.region.as_deref(), Some("us-west-2"));
    assert_eq!(r.profile, "default");

    // Explicit beats both.
    let explicit = Explicit {
        credentials: Some(Credentials::new("AKIDX", "SX")),
        region: Some("sa-east-1".into()),
        endpoint_url: Some("http://x:3".into()),
    };
    let env = [
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", "http://env:4"),
        env_creds[0],
        env_creds[1],
    ];
    let r = resolve(&explicit, &env, &files).unwrap();
    assert_eq!(r.source, CredentialSource::Explicit);
    assert_eq!(r.credentials.access_key_id(), "AKIDX");
    assert_eq!(r.region.as_deref(), Some("sa-east-1"));
    assert_eq!(r.endpoint_url.as_deref(), Some("http://x:3"));
    let r = resolve(&Explicit::default(), &env, &files).unwrap();
    assert_eq!(r.region.as_deref(), Some("us-east-1"));
    assert_eq!(r.endpoint_url.as_deref(), Some("http://env:4"));
}

#[test]
fn resolution_errors_say_what_to_do() {
    let err = resolve(&Explicit::default(), &[("X", "Y")], &SharedFiles::default()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
        "{msg}"
    );
    assert!(
        msg.contains("no shared config or credentials file"),
        "{msg}"
    );

    let files = SharedFiles {
        config: Some(CONFIG),
        credentials: None,
    };
    let err = resolve(
        &Explicit::default(),
        &[("AWS_PROFILE", "region-only")],
        &files,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("profile \"region-only\" has no access keys"),
        "{err}"
    );

    let err = resolve(&Explicit::default(), &[("AWS_PROFILE", "ghost")], &files).unwrap_err();
    assert_eq!(
        err,
        CredentialsError::ProfileNotFound {
            profile: "ghost".into(),
            variable: "AWS_PROFILE"
        }
    );
    assert!(err.to_string().contains("unset AWS_PROFILE"));
    // Explicit credentials need no profile.
    let explicit = Explicit {
        credentials: Some(Credentials::new("A", "S")),
        ..Explicit::default()
    };
    assert!(resolve(&explicit, &[("AWS_PROFILE", "ghost")], &files).is_ok());

    let bad = SharedFiles {
        config: Some("[default]\nnonsense\n"),
        credentials: None,
    };
    let err = resolve(&Explicit::default(), &[("X", "Y")], &bad).unwrap_err();
    assert!(
        err.to_string().contains("shared config file, line 2"),
        "{err}"
    );
}

#[test]
fn debug_redacts_secrets() {
    let c = Credentials::new("AKIDPUBLIC", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
        .with_session_token("FwoGZXIvYXdzEXAMPLETOKEN")
        .with_expiry_epoch_secs(1_795_608_000);
    let shown = format!("{c:?} {c:#?}");
    assert!(shown.contains("AKIDPUBLIC"));
    assert!(shown.contains("redacted"));
    assert!(shown.contains("2026-11-25T12:00:00Z"));
    assert!(!shown.contains("wJalr"), "{shown}");
    assert!(!shown.contains("FwoGZ"), "{shown}");
    let r = resolve(
        &Explicit {
            credentials: Some(c),
            ..Explicit::default()
        },
        &[("A", "B")],
        &SharedFiles::default(),
    )
    .unwrap();
    assert!(!format!("{r:?}").contains("wJalr"));
}

#[test]
fn needs_refresh_and_expiry() {
    let expiry = UNIX_EPOCH + Duration::from_secs(10_000);
    let c = Credentials::new("A", "S").with_expiry(expiry);
    let margin = Duration::from_secs(300);
    assert!(!c.needs_refresh(expiry - Duration::from_secs(301), margin));
    assert!(c.needs_refresh(expiry - Duration::from_secs(300), margin));
    assert!(c.needs_refresh(expiry + Duration::from_secs(1), margin));
    assert!(!c.is_expired(expiry - Duration::from_secs(1)));
    assert!(c.is_expired(expiry));
    assert_eq!(c.refresh_at(margin), Some(expiry - margin));
    assert_eq!(
        c.refresh_at(Duration::from_secs(1_000_000)),
        Some(expiry - Duration::from_secs(1_000_000))
    );
    let forever = Credentials::new("A", "S");
    assert!(!forever.needs_refresh(
        SystemTime::UNIX_EPOCH + Duration::from_secs(u32::MAX.into()),
        margin
    ));
    assert_eq!(forever.refresh_at(margin), None);
}

#[test]
fn iot_request() {
    let req = iot::credentials_request(
        "https://c2ab3cd.credentials.iot.us-east-1.amazonaws.com/",
        "KvsCameraIoTRoleAlias",
        "front-door_cam:1",
    )
    .unwrap();
    assert_eq!(req.method(), http::Method::GET);
    assert_eq!(
        req.uri().to_string(),
        "https://c2ab3cd.credentials.iot.us-east-1.amazonaws.com/role-aliases/KvsCameraIoTRoleAlias/credentials"
    );
    assert_eq!(req.headers()["x-amzn-iot-thingname"], "front-door_cam:1");
    let local = iot::credentials_request("127.0.0.1:8443", "a=b,c@d-e_f", "t").unwrap();
    assert_eq!(
        local.uri().to_string(),
        "https://127.0.0.1:8443/role-aliases/a=b,c@d-e_f/credentials"
    );
    assert!(matches!(
        iot::credentials_request("host/path", "a", "t"),
        Err(IotError::InvalidEndpoint(_))
    ));
    assert!(matches!(
        iot::credentials_request("", "a", "t"),
        Err(IotError::InvalidEndpoint(_))
    ));
    assert!(matches!(
        iot::credentials_request("h", "a/../b", "t"),
        Err(IotError::InvalidRoleAlias(_))
    ));
    assert!(matches!(
        iot::credentials_request("h", &"a".repeat(129), "t"),
        Err(IotError::InvalidRoleAlias(_))
    ));
    assert!(matches!(
        iot::credentials_request("h", "a", "t\r\nx: y"),
        Err(IotError::InvalidThingName(_))
    ));
    assert!(matches!(
        iot::credentials_request("h", "a", ""),
        Err(IotError::InvalidThingName(_))
    ));
}

#[test]
fn iot_response() {
    let body = br#"{"credentials":{"accessKeyId":"ASIAEXAMPLE","secretAccessKey":"wJalrSECRET","sessionToken":"TOKEN","expiration":"2026-11-25T12:00:00Z"}}"#;
    let c = iot::parse_credentials_response(200, body).unwrap();
    assert_eq!(c.access_key_id(), "ASIAEXAMPLE");
    assert_eq!(c.secret_access_key(), "wJalrSECRET");
    assert_eq!(c.session_token(), Some("TOKEN"));
    assert_eq!(c.expiry_epoch_secs(), Some(1_795_608_000));
    let now = parse_rfc3339("2026-11-25T11:56:00Z").unwrap();
    assert!(c.needs_refresh(now, Duration::from_secs(300)));
    assert!(!c.needs_refresh(now, Duration::from_secs(60)));

    let with_offset = br#"{"credentials":{"accessKeyId":"A","secretAccessKey":"S","sessionToken":"T","expiration":"2026-11-25T13:00:00.250+01:00"},"extra":1}"#;
    let c = iot::parse_credentials_response(200, with_offset).unwrap();
    assert_eq!(
        c.expiry(),
        Some(UNIX_EPOCH + Duration::new(1_795_608_000, 250_000_000))
    );

    assert!(matches!(
        iot::parse_credentials_response(200, b"{\"credentials\":"),
        Err(IotError::Json(_))
    ));
    assert!(matches!(
        iot::parse_credentials_response(200, b"<html>"),
        Err(IotError::Json(_))
    ));
    assert_eq!(
        iot::parse_credentials_response(200, br#"{"credentials":{"accessKeyId":"A","secretAccessKey":"S","expiration":"2026-11-25T12:00:00Z"}}"#),
        Err(IotError::MissingField("sessionToken"))
    );
    assert_eq!(
        iot::parse_credentials_response(200, br#"{"other":{}}"#),
        Err(IotError::MissingField("(the credentials object)"))
    );
    let bad_expiry = br#"{"credentials":{"accessKeyId":"A","secretAccessKey":"S","sessionToken":"T","expiration":"2026-02-30T00:00:00Z"}}"#;
    let err = iot::parse_credentials_response(200, bad_expiry).unwrap_err();
    assert!(err.to_string().contains("day out of range"), "{err}");
    assert_eq!(
        iot::parse_credentials_response(403, br#"{"message":"Access Denied"}"#),
        Err(IotError::Service {
            status: 403,
            message: "Access Denied".into()
        })
    );
    let huge = vec![b' '; iot::MAX_RESPONSE_LEN + 1];
    assert!(matches!(
        iot::parse_credentials_response(200, &huge),
        Err(IotError::TooLarge { .. })
    ));
}

#[test]
fn rfc3339_parse_and_format() {
    let t = |s: &str| {
        parse_rfc3339(s)
            .unwrap()
            .duration_since(UNIX_EPOCH)
            .unwrap()
    };
    assert_eq!(t("1970-01-01T00:00:00Z"), Duration::ZERO);
    assert_eq!(t("2000-02-29T23:59:59z").as_secs(), 951_868_799);
    assert_eq!(
        t("2026-11-25t12:00:00.123456789123Z"),
        Duration::new(1_795_608_000, 123_456_789)
    );
    assert_eq!(t("2026-11-25 07:30:00-04:30").as_secs(), 1_795_608_000);
    assert_eq!(t("2016-12-31T23:59:60Z").as_secs(), 1_483_228_800); // leap second
    let before = parse_rfc3339("1969-12-31T23:59:59.5Z").unwrap();
    assert_eq!(
        UNIX_EPOCH.duration_since(before).unwrap(),
        Duration::from_millis(500)
    );
    for bad in [
        "",
        "2026-11-25",
        "2026-13-01T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "2026-11-25T24:00:00Z",
        "2026-11-25T12:00:00",
        "2026-11-25T12:00:00+0100",
        "2026-11-25T12:00:00.Z",
        "2026-11-25T12:00:00Zjunk",
        "２０２６-11-25T12:00:00Z",
    ] {
        assert!(parse_rfc3339(bad).is_err(), "{bad:?} should fail");
    }
    let err = parse_rfc3339("2026-11-25X12:00:00Z").unwrap_err();
    assert_eq!(err.position, 10);
    for s in [
        "1970-01-01T00:00:00Z",
        "2026-11-25T12:00:00Z",
        "2400-02-29T01:02:03Z",
        "1900-03-01T00:00:00Z",
    ] {
        assert_eq!(format_rfc3339(parse_rfc3339(s).unwrap()), s);
    }
    assert_eq!(
        format_rfc3339(UNIX_EPOCH - Duration::from_millis(1)),
        "1969-12-31T23:59:59Z"
    );
}
