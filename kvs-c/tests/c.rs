//! The C side of libkvs, tested from C: programs in `kvs-c/tests/c/` and `examples/c/` are
//! compiled with the system `cc` against `include/kvs.h` and the `libkvs.a` of the current build,
//! then run plain, with ASan/UBSan and under valgrind. Also: the header alone compiles as C99
//! (`-pedantic -Werror`) and as C++; the documented link line equals what rustc prints; the C
//! MKV parser's counts equal the Rust reader's; a C producer streams to a real `kvs serve`
//! through the sans-IO session over its own socket and the data reads back intact.
//!
//! Tools (`cc`, `c++`, `valgrind`) are found through `PATH`; a missing one skips its test with a
//! message, unless `KVS_REQUIRE_TOOLS=1`, which makes it fail.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The link line documented in the README (glibc targets): what
/// `cargo rustc -p kvs-c --crate-type staticlib -- --print native-static-libs` prints.
const NATIVE_STATIC_LIBS: &str = "-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn require_tools() -> bool {
    std::env::var("KVS_REQUIRE_TOOLS").as_deref() == Ok("1")
}

/// Whether `tool` is on PATH; otherwise prints why the test is skipped (or fails when tools are
/// required).
fn have(tool: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    if !found {
        assert!(
            !require_tools(),
            "{tool} is not on PATH and KVS_REQUIRE_TOOLS=1"
        );
        println!("skipping: {tool} is not on PATH");
    }
    found
}

/// The build's profile directory (`target/debug`), from this test's own path
/// (`target/debug/deps/c-HASH`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// The static library of the current build (cargo builds it with the rlib this test links).
fn static_lib() -> PathBuf {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let lib = profile_dir().join("libkvs.a");
        if !lib.is_file() {
            let status = Command::new(env!("CARGO"))
                .args(["build", "-p", "kvs-c"])
                .current_dir(repo())
                .status()
                .unwrap();
            assert!(status.success(), "cargo build -p kvs-c failed");
        }
        assert!(lib.is_file(), "{} is missing", lib.display());
        lib
    })
    .clone()
}

fn out_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kvs-c-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Compiles C sources against libkvs.a into `name`, with extra flags.
fn compile(name: &str, sources: &[PathBuf], flags: &[&str]) -> PathBuf {
    let exe = out_dir().join(name);
    let mut cmd = Command::new("cc");
    cmd.args([
        "-std=c11",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-g",
        "-D_POSIX_C_SOURCE=200809L",
    ])
    .arg("-I")
    .arg(repo().join("include"))
    .args(flags)
    .args(sources)
    .arg(static_lib())
    .args(NATIVE_STATIC_LIBS.split(' '))
    .arg("-o")
    .arg(&exe);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "compiling {name} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn api_test_source() -> Vec<PathBuf> {
    vec![PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/c/api_test.c")]
}

#[test]
fn header_compiles_as_c99_pedantic_and_as_cpp() {
    if !have("cc") {
        return;
    }
    let dir = out_dir();
    let src = dir.join("header_only.c");
    std::fs::write(
        &src,
        "#include \"kvs.h\"\nint main(void) { return KVS_RESULT_OK + (int)sizeof(kvs_reader_event) * 0; }\n",
    )
    .unwrap();
    let include = repo().join("include");
    run_ok(
        Command::new("cc")
            .args(["-std=c99", "-pedantic", "-Werror", "-Wall", "-Wextra", "-c"])
            .arg("-I")
            .arg(&include)
            .arg(&src)
            .arg("-o")
            .arg(dir.join("header_c99.o")),
    );
    if !have("c++") {
        return;
    }
    run_ok(
        Command::new("c++")
            .args([
                "-x",
                "c++",
                "-std=c++11",
                "-pedantic",
                "-Werror",
                "-Wall",
                "-Wextra",
                "-c",
            ])
            .arg("-I")
            .arg(&include)
            .arg(&src)
            .arg("-o")
            .arg(dir.join("header_cpp.o")),
    );
}

#[test]
fn c_api_test_plain() {
    if !have("cc") {
        return;
    }
    let exe = compile("api_test", &api_test_source(), &[]);
    let out = run_ok(&mut Command::new(exe));
    assert!(out.contains("checks passed"), "{out}");
}

#[test]
fn c_api_test_with_address_and_undefined_sanitizers() {
    if !have("cc") {
        return;
    }
    let exe = compile(
        "api_test_asan",
        &api_test_source(),
        &[
            "-fsanitize=address,undefined",
            "-fno-omit-frame-pointer",
            "-fno-sanitize-recover=all",
        ],
    );
    // The sanitizer runtime really is in the binary.
    let binary = std::fs::read(&exe).unwrap();
    assert!(
        binary.windows(11).any(|w| w == b"__asan_init"),
        "the ASan runtime is missing from the test binary"
    );
    let out = run_ok(
        Command::new(exe)
            .env(
                "ASAN_OPTIONS",
                "detect_leaks=1:abort_on_error=0:exitcode=86",
            )
            .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1"),
    );
    assert!(out.contains("checks passed"), "{out}");
}

#[test]
fn c_api_test_under_valgrind() {
    if !have("cc") || !have("valgrind") {
        return;
    }
    let exe = compile("api_test_vg", &api_test_source(), &[]);
    let out = Command::new("valgrind")
        .args([
            "--quiet",
            "--error-exitcode=99",
            "--leak-check=full",
            "--show-leak-kinds=definite,indirect,possible",
            "--errors-for-leak-kinds=definite,indirect,possible",
        ])
        .arg(&exe)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "valgrind reported errors or leaks ({}):\n{stderr}",
        out.status
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("checks passed"));
}

#[test]
fn documented_link_line_matches_rustc() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    assert!(
        readme.contains(NATIVE_STATIC_LIBS),
        "README must document the link line {NATIVE_STATIC_LIBS:?}"
    );
    // Ask rustc, through cargo, in a separate target directory (kept under target/ so that later
    // runs are incremental) so that the build lock of the running `cargo test` is not needed.
    let target = profile_dir().parent().unwrap().join("kvs-c-native-libs");
    let out = Command::new(env!("CARGO"))
        .args([
            "rustc",
            "-q",
            "-p",
            "kvs-c",
            "--lib",
            "--crate-type",
            "staticlib",
            "--",
        ])
        .args(["--print", "native-static-libs"])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(repo())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cargo rustc failed:\n{stderr}");
    let line = stderr
        .lines()
        .find_map(|l| l.split("native-static-libs: ").nth(1))
        .unwrap_or_else(|| panic!("no native-static-libs line in:\n{stderr}"))
        .trim();
    assert_eq!(line, NATIVE_STATIC_LIBS);
}

#[test]
fn pkg_config_template_links_the_same_libraries() {
    let pc = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("kvs.pc.in"))
        .unwrap();
    assert!(pc.contains(&format!("Libs.private: {NATIVE_STATIC_LIBS}\n")));
    assert!(pc.contains("Libs: -L${libdir} -lkvs\n"));
}

/// Counts the C parser prints on its last line: `summary fragments=N frames=N keyframes=N
/// tracks=N errors=N`.
fn c_counts(output: &str) -> [u64; 5] {
    let line = output
        .lines()
        .rev()
        .find(|l| l.starts_with("summary "))
        .unwrap_or_else(|| panic!("no summary line in:\n{output}"));
    let mut counts = [0u64; 5];
    for (i, key) in ["fragments", "frames", "keyframes", "tracks", "errors"]
        .iter()
        .enumerate()
    {
        let prefix = format!("{key}=");
        counts[i] = line
            .split(' ')
            .find_map(|w| w.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("{key} missing in {line}"))
            .parse()
            .unwrap();
    }
    counts
}

/// The same counts from the Rust reader.
fn rust_counts(data: &[u8]) -> [u64; 5] {
    use kvs_core::mkv::reader::{Event, decode_all};
    let mut c = [0u64; 5];
    for e in decode_all(data) {
        match e {
            Ok(Event::FragmentEnd(_)) => c[0] += 1,
            Ok(Event::Frame(f)) => {
                c[1] += 1;
                c[2] += u64::from(f.keyframe);
            }
            Ok(Event::Track(_)) => c[3] += 1,
            Err(_) => c[4] += 1,
            _ => {}
        }
    }
    c
}

fn mkv_parse_exe() -> PathBuf {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| compile("mkv_parse", &[repo().join("examples/c/mkv_parse.c")], &[]))
        .clone()
}

#[test]
fn c_mkv_parser_counts_equal_the_rust_reader() {
    if !have("cc") {
        return;
    }
    let sample = repo().join("examples/media/sample.mkv");
    let out = run_ok(Command::new(mkv_parse_exe()).arg(&sample));
    let data = std::fs::read(&sample).unwrap();
    let expected = rust_counts(&data);
    assert_eq!(c_counts(&out), expected, "C parser output:\n{out}");
    assert_eq!(expected, [5, 408, 5, 2, 0], "sample.mkv changed?");
    // One line per fragment.
    assert_eq!(
        out.lines().filter(|l| l.starts_with("fragment ")).count(),
        5
    );
    // Standard input in odd-sized chunks gives the same.
    let mut child = Command::new(mkv_parse_exe())
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&data).unwrap();
    let out2 = child.wait_with_output().unwrap();
    assert!(out2.status.success());
    assert_eq!(c_counts(&String::from_utf8_lossy(&out2.stdout)), expected);
}

// ---------------------------------------------------------------------------------------------
// End to end against `kvs serve`.

/// The `kvs` binary of this build, built if needed (in its own target directory, so that the
/// build lock of the running `cargo test` is not needed).
fn kvs_binary() -> Option<PathBuf> {
    let here = profile_dir().join("kvs");
    if here.is_file() {
        return Some(here);
    }
    let target = profile_dir().parent().unwrap().join("kvs-c-cli");
    let status = Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", "kvs-cli"])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(repo())
        .status()
        .ok()?;
    let exe = target.join("debug/kvs");
    (status.success() && exe.is_file()).then_some(exe)
}

struct Server {
    child: std::process::Child,
    port: u16,
    access_key: String,
    secret_key: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(kvs: &Path) -> Server {
    let data = out_dir().join("serve-data");
    let mut child = Command::new(kvs)
        .args(["serve", "--port", "0", "--data-dir"])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let (mut port, mut ak, mut sk) = (None, None, None);
    for line in lines.by_ref() {
        let line = line.unwrap();
        for word in line.split_whitespace() {
            if let Some(url) = word.strip_prefix("AWS_ENDPOINT_URL=") {
                port = url.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
            }
            if let Some(v) = word.strip_prefix("AWS_ACCESS_KEY_ID=") {
                ak = Some(v.to_owned());
            }
            if let Some(v) = word.strip_prefix("AWS_SECRET_ACCESS_KEY=") {
                sk = Some(v.to_owned());
            }
        }
        if line.starts_with("export ") {
            break;
        }
    }
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server {
        child,
        port: port.expect("no endpoint in the banner"),
        access_key: ak.expect("no access key in the banner"),
        secret_key: sk.expect("no secret key in the banner"),
    }
}

/// GetMedia EARLIEST over plain HTTP, signed with kvs-core; the whole (de-chunked) body.
fn get_media(server: &Server, stream: &str) -> Vec<u8> {
    use kvs_core::api::{ApiOperation, GetMediaRequest, StartSelector, StartSelectorType};
    use kvs_core::sigv4::{
        PayloadSigning, RequestView, SigningCredentials, SigningParams, sign_native,
    };
    let endpoint: http::Uri = format!("http://127.0.0.1:{}", server.port).parse().unwrap();
    let op = GetMediaRequest {
        stream_name: Some(stream.into()),
        stream_arn: None,
        start_selector: StartSelector::new(StartSelectorType::Earliest),
    };
    let request = op.to_http(&endpoint).unwrap();
    let body = request.body().clone();
    let headers: Vec<(String, Vec<u8>)> = request
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect();
    let view_headers: Vec<(&str, &[u8])> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    let params = SigningParams::new(
        SigningCredentials {
            access_key_id: &server.access_key,
            secret_access_key: &server.secret_key,
            session_token: None,
        },
        "us-east-1",
        std::time::SystemTime::now(),
        PayloadSigning::Body(&body),
    );
    let signed = sign_native(
        &RequestView::new("POST", "/getMedia", &view_headers),
        &params,
    )
    .unwrap();
    let mut head = String::from("POST /getMedia HTTP/1.1\r\n");
    for (n, v) in headers
        .iter()
        .map(|(n, v)| (n.clone(), String::from_utf8_lossy(v).into_owned()))
        .chain(signed.headers.clone())
    {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    let mut sock = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    sock.write_all(head.as_bytes()).unwrap();
    sock.write_all(&body).unwrap();
    let mut raw = Vec::new();
    sock.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no response head")
        + 4;
    let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
    assert!(
        head.starts_with("http/1.1 200"),
        "GetMedia answered:\n{head}"
    );
    let body = &raw[split..];
    if head.contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_vec()
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        data = &data[eol + 2..];
        if size == 0 || data.len() < size {
            out.extend_from_slice(&data[..size.min(data.len())]);
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[(size + 2).min(data.len())..];
    }
    out
}

#[test]
fn c_producer_streams_to_kvs_serve_and_the_data_reads_back() {
    if !have("cc") {
        return;
    }
    let Some(kvs) = kvs_binary() else {
        assert!(!require_tools(), "the kvs binary could not be built");
        println!("skipping: the kvs binary could not be built");
        return;
    };
    let server = start_server(&kvs);
    let producer = compile("producer", &[repo().join("examples/c/producer.c")], &[]);
    let sample = repo().join("examples/media/sample.mkv");
    let started = Instant::now();
    let out = run_ok(
        Command::new(&producer)
            .arg("127.0.0.1")
            .arg(server.port.to_string())
            .arg("c-camera")
            .arg(&sample)
            .env("AWS_ACCESS_KEY_ID", &server.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &server.secret_key)
            .env("AWS_REGION", "us-east-1"),
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(out.contains("persisted=5"), "producer output:\n{out}");

    // Read back: every frame, byte for byte and in order, with the same flags.
    let original = kvs_core::mkv::reader::decode_all(&std::fs::read(&sample).unwrap());
    let stored = get_media(&server, "c-camera");
    let back = kvs_core::mkv::reader::decode_all(&stored);
    let frames = |events: &[Result<kvs_core::mkv::reader::Event, _>]| -> Vec<(u64, bool, Vec<u8>)> {
        events
            .iter()
            .filter_map(|e| match e {
                Ok(kvs_core::mkv::reader::Event::Frame(f)) => {
                    Some((f.track, f.keyframe, f.data.to_vec()))
                }
                _ => None,
            })
            .collect()
    };
    let (a, b) = (frames(&original), frames(&back));
    assert_eq!(a.len(), 408);
    assert_eq!(b.len(), a.len(), "frames read back");
    assert!(a == b, "frame payloads differ after the round trip");
    let fragments_back = back
        .iter()
        .filter(|e| matches!(e, Ok(kvs_core::mkv::reader::Event::FragmentEnd(f)) if f.metadata.fragment_number.is_some()))
        .count();
    assert_eq!(fragments_back, 5);

    // The C parser reads the GetMedia stream with the same counts as the Rust reader.
    let file = out_dir().join("getmedia.mkv");
    std::fs::write(&file, &stored).unwrap();
    let parsed = run_ok(Command::new(mkv_parse_exe()).arg(&file));
    assert_eq!(
        c_counts(&parsed),
        rust_counts(&stored),
        "C parser:\n{parsed}"
    );
    assert!(parsed.contains("fragment_number="), "{parsed}");
}
