//! Access control against a real server on loopback: key pairs from a credentials file with
//! per-profile policies (read-only, scoped to `cam-*`, explicit deny, expired, an IAM policy
//! document, admin), checked with kvs-core's client types, raw PutMedia, botocore and the AWS CLI.

mod common;

use std::process::Command;

use common::*;
use kvs_core::api::*;

const ADMIN: (&str, &str) = (
    "AKIAKVSADMIN00000001",
    "admin-secret-0000000000000000000000000000",
);
const READER: (&str, &str) = (
    "AKIAKVSREADER0000001",
    "reader-secret-000000000000000000000000000",
);
const CAMERA: (&str, &str) = (
    "AKIAKVSCAMERA0000001",
    "camera-secret-000000000000000000000000000",
);
const NODELETE: (&str, &str) = (
    "AKIAKVSNODELETE00001",
    "nodelete-secret-0000000000000000000000000",
);
const EXPIRED: (&str, &str) = (
    "AKIAKVSEXPIRED000001",
    "expired-secret-00000000000000000000000000",
);
const DOC: (&str, &str) = (
    "AKIAKVSDOC0000000001",
    "doc-secret-000000000000000000000000000000",
);

/// The README's example file plus a deny profile, an expired one and a policy-document one.
fn credentials_file() -> String {
    format!(
        "# admin: no policy keys, full access (as every existing file)
[default]
aws_access_key_id = {}
aws_secret_access_key = {}

# a read-only key
[reader]
aws_access_key_id = {}
aws_secret_access_key = {}
kvs_allow = kinesisvideo:GetMedia, kinesisvideo:ListFragments, kinesisvideo:GetMediaForFragmentList, kinesisvideo:Describe*, kinesisvideo:GetDataEndpoint

# a camera: everything, on its own streams only
[camera]
aws_access_key_id = {}
aws_secret_access_key = {}
kvs_streams = cam-*

[nodelete]
aws_access_key_id = {}
aws_secret_access_key = {}
kvs_allow = kinesisvideo:*
kvs_deny = kinesisvideo:DeleteStream

[expired]
aws_access_key_id = {}
aws_secret_access_key = {}
kvs_expiration = 2020-01-01T00:00:00Z

[doc]
aws_access_key_id = {}
aws_secret_access_key = {}
kvs_policy_file = policy.json
",
        ADMIN.0,
        ADMIN.1,
        READER.0,
        READER.1,
        CAMERA.0,
        CAMERA.1,
        NODELETE.0,
        NODELETE.1,
        EXPIRED.0,
        EXPIRED.1,
        DOC.0,
        DOC.1
    )
}

const POLICY_JSON: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "ReadCams", "Effect": "Allow",
     "Action": ["kinesisvideo:Describe*", "kinesisvideo:GetMedia"],
     "Resource": "arn:aws:kinesisvideo:*:*:stream/cam-*/*"},
    {"Effect": "Allow", "Action": "kinesisvideo:ListStreams", "Resource": "*"},
    {"Effect": "Deny", "Action": "kinesisvideo:*",
     "Resource": "arn:aws:kinesisvideo:*:*:stream/cam-2/*"}
  ]
}"#;

struct Setup {
    server: kvs_server::Server,
    dir: std::path::PathBuf,
    admin: Endpoint,
}

impl Setup {
    async fn new() -> Setup {
        let (server, dir) =
            start_with_credentials(&credentials_file(), &[("policy.json", POLICY_JSON)])
                .await
                .unwrap();
        let admin = Endpoint::of(&server);
        // The default profile is the one the server presents.
        assert_eq!(admin.access_key_id, ADMIN.0);
        assert!(
            server
                .banner()
                .contains("(6 key pairs, 4 restricted by policy)"),
            "{}",
            server.banner()
        );
        Setup { server, dir, admin }
    }

    fn key(&self, (id, secret): (&str, &str)) -> Endpoint {
        self.admin.with_keys(id, secret)
    }
}

fn describe(name: &str) -> DescribeStreamRequest {
    DescribeStreamRequest {
        stream_name: Some(name.into()),
        stream_arn: None,
    }
}

fn describe_arn(arn: &str) -> DescribeStreamRequest {
    DescribeStreamRequest {
        stream_name: None,
        stream_arn: Some(arn.into()),
    }
}

fn get_media(name: Option<&str>, arn: Option<&str>) -> GetMediaRequest {
    GetMediaRequest {
        stream_name: name.map(Into::into),
        stream_arn: arn.map(Into::into),
        start_selector: StartSelector::new(StartSelectorType::Earliest),
    }
}

fn list_fragments(name: &str) -> ListFragmentsRequest {
    ListFragmentsRequest {
        stream_name: Some(name.into()),
        fragment_selector: Some(FragmentSelector {
            fragment_selector_type: TimestampSelectorType::ServerTimestamp,
            timestamp_range: TimestampRange {
                start_timestamp: Timestamp::from_millis(0),
                end_timestamp: Timestamp::from_millis(now_ms() + 60_000),
            },
        }),
        ..ListFragmentsRequest::default()
    }
}

async fn arn_of(ep: &Endpoint, name: &str) -> String {
    call(ep, &describe(name))
        .await
        .unwrap()
        .stream_info
        .stream_arn
}

fn assert_denied(e: &ApiError, kind: ApiErrorKind, profile: &str, action: &str, resource: &str) {
    assert_eq!(e.kind, kind, "{e}");
    assert_eq!(e.http_status, 401, "{e}");
    let want = format!(
        "User: arn:aws:iam::000000000000:user/{profile} is not authorized to perform: kinesisvideo:{action} on resource: {resource}"
    );
    assert!(e.message.starts_with(&want), "{}\nwant: {want}", e.message);
}

/// The error of a raw response (GetMedia, PutMedia).
fn error_of(r: &http::Response<bytes::Bytes>) -> ApiError {
    ApiError::from_http(r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_key_reads_but_cannot_write_or_delete() {
    let s = Setup::new().await;
    let reader = s.key(READER);
    create_stream(&s.admin, "lobby", 1).await;
    let numbers = put_fragments(&s.admin, "lobby", 2).await;
    let lobby_arn = arn_of(&s.admin, "lobby").await;

    // PutMedia: 401 NotAuthorizedException before the session starts; nothing stored.
    create_stream(&s.admin, "empty", 1).await;
    for name in ["lobby", "empty"] {
        let mut pm = PutMedia::open(&reader, &absolute(name)).await;
        assert_eq!(pm.status, 401, "{}", pm.head);
        assert!(pm.head.contains("NotAuthorizedException"), "{}", pm.head);
        // Whatever it sends next is not taken as media (checked below).
        let mut producer = Producer::new(now_ms() - 10_000, false);
        pm.send(&producer.header()).await;
        pm.send(&producer.fragment(3, 100)).await;
        pm.finish().await;
    }
    let listed = call(&s.admin, &list_fragments("lobby")).await.unwrap();
    assert_eq!(listed.fragments.len(), numbers.len());
    let empty = call(&s.admin, &list_fragments("empty")).await.unwrap();
    assert!(empty.fragments.is_empty());
    // The stream's directory appears with its first write: none, or one without segments.
    let empty_dir = stream_dir_path(&s.dir, "empty");
    assert!(empty_dir.is_none_or(|d| segment_files(&d).is_empty()));

    // DeleteStream: NotAuthorizedException; the stream stays.
    let e = call(
        &reader,
        &DeleteStreamRequest {
            stream_arn: lobby_arn.clone(),
            current_version: None,
        },
    )
    .await
    .unwrap_err();
    assert_denied(
        &e,
        ApiErrorKind::NotAuthorized,
        "reader",
        "DeleteStream",
        &lobby_arn,
    );
    assert_eq!(arn_of(&s.admin, "lobby").await, lobby_arn);
    // CreateStream's model has no NotAuthorizedException: AccessDeniedException.
    let e = call(
        &reader,
        &CreateStreamRequest {
            stream_name: "new".into(),
            ..CreateStreamRequest::default()
        },
    )
    .await
    .unwrap_err();
    assert_denied(
        &e,
        ApiErrorKind::AccessDenied,
        "reader",
        "CreateStream",
        "arn:aws:kinesisvideo:us-east-1:000000000000:stream/new/*",
    );
    let e = call(&reader, &ListStreamsRequest::default())
        .await
        .unwrap_err();
    assert_denied(&e, ApiErrorKind::AccessDenied, "reader", "ListStreams", "*");

    // Reads work: DescribeStream, ListFragments, GetMedia (by name and by ARN).
    assert_eq!(arn_of(&reader, "lobby").await, lobby_arn);
    let listed = call(&reader, &list_fragments("lobby")).await.unwrap();
    assert_eq!(listed.fragments.len(), 2);
    for req in [
        get_media(Some("lobby"), None),
        get_media(None, Some(&lobby_arn)),
    ] {
        let r = call_raw(&reader, &req).await;
        assert_eq!(r.status(), 200);
        let got: Vec<String> = decode(r.body())
            .fragments
            .iter()
            .map(|(f, _)| f.metadata.fragment_number.clone().unwrap())
            .collect();
        assert_eq!(got, numbers);
    }
    s.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_key_is_scoped_to_its_streams() {
    let s = Setup::new().await;
    let cam = s.key(CAMERA);
    create_stream(&s.admin, "lobby", 1).await;
    put_fragments(&s.admin, "lobby", 1).await;
    let lobby_arn = arn_of(&s.admin, "lobby").await;

    // Its own stream: create, write, read.
    create_stream(&cam, "cam-1", 1).await;
    let numbers = put_fragments(&cam, "cam-1", 2).await;
    let r = call_raw(&cam, &get_media(Some("cam-1"), None)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(decode(r.body()).fragments.len(), numbers.len());
    assert_eq!(
        call(&cam, &list_fragments("cam-1"))
            .await
            .unwrap()
            .fragments
            .len(),
        2
    );

    // lobby: not by name, not by ARN, not by any operation. The message names the stream as
    // the call did: by name without its creation time (existence is not revealed).
    let by_name = "arn:aws:kinesisvideo:us-east-1:000000000000:stream/lobby/*";
    let e = call(&cam, &describe("lobby")).await.unwrap_err();
    assert_denied(
        &e,
        ApiErrorKind::NotAuthorized,
        "camera",
        "DescribeStream",
        by_name,
    );
    let e = call(&cam, &describe_arn(&lobby_arn)).await.unwrap_err();
    assert_denied(
        &e,
        ApiErrorKind::NotAuthorized,
        "camera",
        "DescribeStream",
        &lobby_arn,
    );
    for (req, shown) in [
        (get_media(Some("lobby"), None), by_name),
        (get_media(None, Some(&lobby_arn)), lobby_arn.as_str()),
    ] {
        let r = call_raw(&cam, &req).await;
        assert_eq!(r.status(), 401);
        assert_denied(
            &error_of(&r),
            ApiErrorKind::NotAuthorized,
            "camera",
            "GetMedia",
            shown,
        );
    }
    let e = call(&cam, &list_fragments("lobby")).await.unwrap_err();
    assert_eq!(e.kind, ApiErrorKind::NotAuthorized);
    let e = call(
        &cam,
        &ListTagsForResourceRequest {
            resource_arn: lobby_arn.clone(),
            next_token: None,
        },
    )
    .await
    .unwrap_err();
    assert_denied(
        &e,
        ApiErrorKind::AccessDenied,
        "camera",
        "ListTagsForResource",
        &lobby_arn,
    );
    let pm = PutMedia::open(&cam, &absolute("lobby")).await;
    assert_eq!(pm.status, 401);
    // An ARN naming cam-1 for a stream that is not there (wrong creation time) passes the
    // policy and is then not found; a lobby ARN with any creation time is denied.
    let fake = lobby_arn.replace("/lobby/", "/cam-1/");
    let e = call(&cam, &describe_arn(&fake)).await.unwrap_err();
    assert_eq!(e.kind, ApiErrorKind::ResourceNotFound);
    let e = call(
        &cam,
        &describe_arn(&lobby_arn.replace("/lobby/", "/lobby/1")),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind, ApiErrorKind::NotAuthorized);
    // A missing stream outside the scope is denied like an existing one, not "not found" (no
    // existence probing).
    let e = call(&cam, &describe("lobby-2")).await.unwrap_err();
    assert_denied(
        &e,
        ApiErrorKind::NotAuthorized,
        "camera",
        "DescribeStream",
        "arn:aws:kinesisvideo:us-east-1:000000000000:stream/lobby-2/*",
    );
    let e = call(&cam, &describe("cam-404")).await.unwrap_err();
    assert_eq!(e.kind, ApiErrorKind::ResourceNotFound);
    // ListStreams is on resource `*`, which a scoped key does not have.
    let e = call(&cam, &ListStreamsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind, ApiErrorKind::AccessDenied);
    s.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_deny_wins_expired_keys_fail_admin_unaffected() {
    let s = Setup::new().await;
    create_stream(&s.admin, "cam-1", 1).await;
    create_stream(&s.admin, "cam-2", 1).await;
    create_stream(&s.admin, "lobby", 1).await;

    // kvs_allow = kinesisvideo:* but kvs_deny = kinesisvideo:DeleteStream.
    let nd = s.key(NODELETE);
    create_stream(&nd, "nd-1", 0).await;
    let arn = arn_of(&nd, "nd-1").await;
    let e = call(
        &nd,
        &DeleteStreamRequest {
            stream_arn: arn.clone(),
            current_version: None,
        },
    )
    .await
    .unwrap_err();
    assert_denied(
        &e,
        ApiErrorKind::NotAuthorized,
        "nodelete",
        "DeleteStream",
        &arn,
    );
    assert!(
        e.message
            .ends_with("with an explicit deny in an identity-based policy")
    );
    assert_eq!(arn_of(&s.admin, "nd-1").await, arn);

    // An expired key: the service's expired-token error, on every call.
    let ex = s.key(EXPIRED);
    let e = call(&ex, &describe("cam-1")).await.unwrap_err();
    assert_eq!(e.kind, ApiErrorKind::ExpiredToken, "{e}");
    assert_eq!(e.http_status, 403);
    let pm = PutMedia::open(&ex, &absolute("cam-1")).await;
    assert_eq!(pm.status, 403);
    assert!(pm.head.contains("ExpiredTokenException"), "{}", pm.head);

    // A policy document: Describe*/GetMedia on cam-*, ListStreams on *, everything denied on cam-2.
    let doc = s.key(DOC);
    call(&doc, &describe("cam-1")).await.unwrap();
    let e = call(&doc, &describe("cam-2")).await.unwrap_err();
    assert_eq!(e.kind, ApiErrorKind::NotAuthorized);
    assert!(e.message.contains("explicit deny"), "{}", e.message);
    let e = call(&doc, &describe("lobby")).await.unwrap_err();
    assert_eq!(e.kind, ApiErrorKind::NotAuthorized);
    assert!(!e.message.contains("explicit deny"), "{}", e.message);
    let listed = call(&doc, &ListStreamsRequest::default()).await.unwrap();
    assert_eq!(listed.stream_info_list.len(), 4);
    let e = call(
        &doc,
        &CreateStreamRequest {
            stream_name: "cam-3".into(),
            ..CreateStreamRequest::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind, ApiErrorKind::AccessDenied);

    // Policies match an ARN as the caller wrote it, so an ARN differing from the stream's own
    // in any part (here the partition, which a Deny on `arn:aws:...` would not match) must not
    // resolve to the stream.
    let arn = arn_of(&s.admin, "cam-2").await;
    let foreign = arn.replacen("arn:aws:", "arn:aws-cn:", 1);
    let e = call(
        &s.admin,
        &DeleteStreamRequest {
            stream_arn: foreign,
            current_version: None,
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind, ApiErrorKind::ResourceNotFound, "{e}");
    assert_eq!(arn_of(&s.admin, "cam-2").await, arn);

    // The admin key can do everything, deletes included.
    call(
        &s.admin,
        &DeleteStreamRequest {
            stream_arn: arn,
            current_version: None,
        },
    )
    .await
    .unwrap();
    put_fragments(&s.admin, "lobby", 1).await;
    s.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_policy_lines_refuse_to_start() {
    let pair = "aws_access_key_id = AKIAKVSBAD0000000001\naws_secret_access_key = s\n";
    // (credentials file, side files, expected part of the error)
    type Case<'a> = (String, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            format!(
                "[default]\n{pair}\n[ops]\n{pair}kvs_allow = kinesisvideo:GetMedia, kinesisvideo:PutMeda\n"
            ),
            vec![],
            "profile [ops], line 8 (kvs_allow): action 'kinesisvideo:PutMeda' matches no operation",
        ),
        (
            format!("[cam]\n{pair}kvs_allow = GetMedia\n"),
            vec![],
            "profile [cam], line 4 (kvs_allow): 'GetMedia' is not a kinesisvideo action",
        ),
        (
            format!("[cam]\n{pair}kvs_stream = cam-*\n"),
            vec![],
            "profile [cam], line 4 (kvs_stream): unknown key",
        ),
        (
            format!("[cam]\n{pair}kvs_streams = cam/*\n"),
            vec![],
            "profile [cam], line 4 (kvs_streams): stream pattern 'cam/*' is invalid",
        ),
        (
            format!("[cam]\n{pair}kvs_expiration = tomorrow\n"),
            vec![],
            "profile [cam], line 4 (kvs_expiration):",
        ),
        (
            "[cam]\nkvs_allow = kinesisvideo:*\n".to_owned(),
            vec![],
            "profile [cam], line 2 (kvs_allow): policy keys need a key pair",
        ),
        (
            format!("[cam]\n{pair}kvs_policy_file = p.json\n"),
            vec![(
                "p.json",
                r#"{"Statement": [{"Effect": "Allow", "Action": "kinesisvideo:*", "Resource": "cam-*"}]}"#,
            )],
            "profile [cam], line 4 (kvs_policy_file):",
        ),
        (
            format!("[cam]\n{pair}kvs_policy_file = missing.json\n"),
            vec![],
            "missing.json",
        ),
        (
            format!("[a]\n{pair}\n[b]\n{pair}kvs_streams = cam-*\n"),
            vec![],
            "access key id AKIAKVSBAD0000000001 is also in profile [a]",
        ),
    ];
    for (ini, files, want) in cases {
        let e = match start_with_credentials(&ini, &files).await {
            Ok((server, _)) => {
                server.shutdown().await;
                panic!("started with:\n{ini}");
            }
            Err(e) => e.to_string(),
        };
        assert!(e.starts_with("credentials file "), "{e}");
        assert!(e.contains("/credentials: "), "{e}");
        assert!(e.contains(want), "{e}\nwant: {want}");
    }
    // The README's example file starts, and the banner counts its restricted keys.
    let readme = include_str!("../../README.md");
    let (_, rest) = readme
        .split_once("## Access control")
        .expect("README section");
    let (_, rest) = rest.split_once("```ini\n").expect("example file");
    let (example, _) = rest.split_once("```").unwrap();
    let (server, _) = start_with_credentials(example, &[]).await.unwrap();
    assert!(
        server
            .banner()
            .contains("(3 key pairs, 2 restricted by policy)"),
        "{}",
        server.banner()
    );
    server.shutdown().await;
    // The same pair in two profiles without policies still starts (as before).
    let ok = format!("[default]\n{pair}\n[copy]\n{pair}region = us-east-1\n");
    let (server, _) = start_with_credentials(&ok, &[]).await.unwrap();
    server.shutdown().await;
}

fn require() -> bool {
    std::env::var("KVS_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn botocore_and_aws_cli_see_the_modelled_exceptions() {
    let s = Setup::new().await;
    create_stream(&s.admin, "lobby", 1).await;
    create_stream(&s.admin, "cam-1", 1).await;
    let lobby_arn = arn_of(&s.admin, "lobby").await;
    let base = s.server.base_url().to_owned();

    let py = std::env::var("KVS_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_botocore = Command::new(&py)
        .args(["-c", "import botocore"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_botocore {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/access_client.py");
        let (b, arn) = (base.clone(), lobby_arn.clone());
        let output = tokio::task::spawn_blocking(move || {
            Command::new(py)
                .arg(script)
                .env("KVS_ENDPOINT", b)
                .env("KVS_ALLOWED_STREAM", "cam-1")
                .env("KVS_DENIED_STREAM", "lobby")
                .env("KVS_DENIED_ARN", arn)
                .env("AWS_ACCESS_KEY_ID", CAMERA.0)
                .env("AWS_SECRET_ACCESS_KEY", CAMERA.1)
                .env("AWS_REGION", "us-east-1")
                .env_remove("AWS_PROFILE")
                .env("AWS_CONFIG_FILE", "/dev/null")
                .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "python failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        for (call, code, action) in [
            (
                "describe_by_name",
                "NotAuthorizedException",
                "DescribeStream",
            ),
            (
                "describe_by_arn",
                "NotAuthorizedException",
                "DescribeStream",
            ),
            ("delete", "NotAuthorizedException", "DeleteStream"),
            ("list_streams", "AccessDeniedException", "ListStreams"),
            ("get_media", "NotAuthorizedException", "GetMedia"),
            ("list_fragments", "NotAuthorizedException", "ListFragments"),
        ] {
            assert_eq!(report[call]["code"], code, "{call}: {report}");
            assert_eq!(report[call]["status"], 401, "{call}: {report}");
            let message = report[call]["message"].as_str().unwrap();
            assert!(
                message.contains(&format!(
                    "user/camera is not authorized to perform: kinesisvideo:{action}"
                )),
                "{call}: {message}"
            );
        }
    } else {
        assert!(
            !require(),
            "{py} with botocore is required (KVS_REQUIRE_TOOLS=1)"
        );
        eprintln!("skipping botocore: {py} cannot import botocore");
    }

    let has_cli = Command::new("aws")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if has_cli {
        let output = tokio::task::spawn_blocking(move || {
            Command::new("aws")
                .args(["kinesisvideo", "describe-stream", "--stream-name", "lobby"])
                .env("AWS_ENDPOINT_URL", &base)
                .env("AWS_ACCESS_KEY_ID", CAMERA.0)
                .env("AWS_SECRET_ACCESS_KEY", CAMERA.1)
                .env("AWS_REGION", "us-east-1")
                .env("AWS_DEFAULT_REGION", "us-east-1")
                .env("AWS_CONFIG_FILE", "/dev/null")
                .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
                .env_remove("AWS_PROFILE")
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("(NotAuthorizedException)")
                && stderr.contains(
                    "user/camera is not authorized to perform: kinesisvideo:DescribeStream"
                ),
            "{stderr}"
        );
    } else {
        assert!(
            !require(),
            "the AWS CLI (aws) is required (KVS_REQUIRE_TOOLS=1)"
        );
        eprintln!("skipping the AWS CLI: aws is not on PATH");
    }
    s.server.shutdown().await;
}
