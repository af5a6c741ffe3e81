//! Real AWS clients against a real server: botocore/boto3 (through `$KVS_PYTHON`) and the AWS
//! CLI. They skip with a message when the tool is missing, unless `KVS_REQUIRE_TOOLS=1`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use kvs_core::ack::AckEventType;

fn require() -> bool {
    std::env::var("KVS_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

fn python() -> String {
    std::env::var("KVS_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Streams `n` fragments into `name` and returns their PERSISTED fragment numbers.
async fn ingest(ep: &Endpoint, name: &str, n: usize) -> Vec<String> {
    create_stream(ep, name, 1).await;
    let mut producer = Producer::new(now_ms() - 20_000, false);
    let mut pm = PutMedia::open(ep, &absolute(name)).await;
    assert_eq!(pm.status, 200);
    pm.send(&producer.header()).await;
    let mut numbers = Vec::new();
    for _ in 0..n {
        let f = producer.fragment(6, 200);
        pm.send(&f).await;
        let acks = pm
            .acks_until(|a| a.event_type == AckEventType::Persisted)
            .await;
        let last = acks.last().unwrap();
        assert_eq!(last.event_type, AckEventType::Persisted);
        numbers.push(last.fragment_number.clone().unwrap().as_str().to_owned());
    }
    pm.finish().await;
    numbers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn botocore_against_the_server() {
    let py = python();
    let ok = Command::new(&py)
        .args(["-c", "import botocore"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            !require(),
            "{py} with botocore is required (KVS_REQUIRE_TOOLS=1)"
        );
        eprintln!("skipping: {py} cannot import botocore");
        return;
    }
    let (server, dir) = start(fast_limits()).await;
    let ep = Endpoint::of(&server);
    let numbers = ingest(&ep, "py-media", 5).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/botocore_client.py");
    let out_dir = dir.join("py-out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let py2 = py.clone();
    let base = server.base_url().to_owned();
    let creds = server.credentials().clone();
    let od = out_dir.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(py2)
            .arg(script)
            .env("KVS_ENDPOINT", base)
            .env("KVS_OUT_DIR", od)
            .env("KVS_MEDIA_STREAM", "py-media")
            .env("AWS_ACCESS_KEY_ID", creds.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", creds.secret_access_key)
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
    assert_eq!(report["control_plane"], "ok");
    let listed: Vec<String> = serde_json::from_value(report["list_fragments"].clone()).unwrap();
    assert_eq!(listed, numbers);
    // The payloads botocore received parse with kvs-core, fragment for fragment.
    let gm = decode(&std::fs::read(out_dir.join("getmedia.mkv")).unwrap());
    let got: Vec<String> = gm
        .fragments
        .iter()
        .map(|(s, _)| s.metadata.fragment_number.clone().unwrap())
        .collect();
    assert_eq!(got, numbers);
    assert!(gm.fragments.iter().all(|(_, f)| f.len() == 6));
    let gl = decode(&std::fs::read(out_dir.join("gmffl.mkv")).unwrap());
    assert_eq!(gl.fragments.len(), numbers.len());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli_against_the_server() {
    let has_cli = Command::new("aws")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_cli {
        assert!(
            !require(),
            "the AWS CLI (aws) is required (KVS_REQUIRE_TOOLS=1)"
        );
        eprintln!("skipping: the AWS CLI (aws) is not on PATH");
        return;
    }
    let (server, dir) = start(fast_limits()).await;
    let ep = Endpoint::of(&server);
    let numbers = ingest(&ep, "cli-media", 3).await;
    let creds = server.credentials().clone();
    let base = server.base_url().to_owned();
    let run = move |args: Vec<String>| {
        let creds = creds.clone();
        let base = base.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                Command::new("aws")
                    .args(&args)
                    .env("AWS_ENDPOINT_URL", &base)
                    .env("AWS_ACCESS_KEY_ID", &creds.access_key_id)
                    .env("AWS_SECRET_ACCESS_KEY", &creds.secret_access_key)
                    .env("AWS_REGION", "us-east-1")
                    .env("AWS_DEFAULT_REGION", "us-east-1")
                    .env("AWS_CONFIG_FILE", "/dev/null")
                    .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
                    .env_remove("AWS_PROFILE")
                    .output()
                    .unwrap()
            })
            .await
            .unwrap()
        }
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let out = run(s(&[
        "kinesisvideo",
        "create-stream",
        "--stream-name",
        "cli-a",
    ]))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(s(&[
        "kinesisvideo",
        "create-stream",
        "--stream-name",
        "cli-a",
    ]))
    .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ResourceInUseException"));
    let out = run(s(&[
        "kinesisvideo",
        "describe-stream",
        "--stream-name",
        "cli-missing",
    ]))
    .await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("ResourceNotFoundException"));
    let out = run(s(&[
        "kinesisvideo",
        "get-data-endpoint",
        "--stream-name",
        "cli-media",
        "--api-name",
        "GET_MEDIA",
        "--query",
        "DataEndpoint",
        "--output",
        "text",
    ]))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let data_ep = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(data_ep, server.base_url());
    let mkv = dir.join("cli.mkv");
    let out = run(vec![
        "kinesis-video-media".into(),
        "get-media".into(),
        "--endpoint-url".into(),
        data_ep.clone(),
        "--stream-name".into(),
        "cli-media".into(),
        "--start-selector".into(),
        "StartSelectorType=EARLIEST".into(),
        mkv.display().to_string(),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("video/webm"));
    let d = decode(&std::fs::read(&mkv).unwrap());
    assert_eq!(d.fragments.len(), numbers.len());
    let out = run(vec![
        "kinesis-video-archived-media".into(),
        "list-fragments".into(),
        "--endpoint-url".into(),
        data_ep.clone(),
        "--stream-name".into(),
        "cli-media".into(),
        "--fragment-selector".into(),
        format!(
            "FragmentSelectorType=SERVER_TIMESTAMP,TimestampRange={{StartTimestamp={},EndTimestamp={}}}",
            now_ms() / 1000 - 3600,
            now_ms() / 1000 + 60
        ),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Fragments"].as_array().unwrap().len(), numbers.len());
    let gl = dir.join("cli-gl.mkv");
    let mut args = vec![
        "kinesis-video-archived-media".to_string(),
        "get-media-for-fragment-list".into(),
        gl.display().to_string(),
        "--endpoint-url".into(),
        data_ep,
        "--stream-name".into(),
        "cli-media".into(),
        "--fragments".into(),
    ];
    args.extend(numbers.iter().cloned());
    let out = run(args).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        decode(&std::fs::read(&gl).unwrap()).fragments.len(),
        numbers.len()
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
    server.shutdown().await;
}
