//! The AWS SigV4 conformance suite (aws-c-auth `v4/`, 38 cases): our native signer reproduces
//! every canonical request, string to sign and signature (header and query forms); aws-sigv4
//! reproduces the signatures where an `http::Request` can express the case; our verifier accepts
//! every signed request at the context's time and rejects every single-part change.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use kvs_core::sigv4::{
    AuthError, PathOptions, Payload, PayloadSigning, RequestView, SessionTokenSigning,
    SignatureLocation, SigningCredentials, SigningKeyCache, SigningParams, StaticCredentials,
    Verifier, canonical, sign_native,
};

fn vectors_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("KVS_VECTORS_DIR") {
        return Some(PathBuf::from(dir).join("sigv4/v4"));
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|a| a.join("shared/vectors/sigv4/v4"))
        .find(|p| p.is_dir())
}

fn require_dir() -> Option<PathBuf> {
    let dir = vectors_dir();
    if dir.is_none() {
        if std::env::var("KVS_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!("shared/vectors/sigv4/v4 not found (set KVS_VECTORS_DIR)");
        }
        println!("SKIP: shared/vectors/sigv4/v4 not found (set KVS_VECTORS_DIR)");
    }
    dir
}

/// A raw HTTP request as written in the suite: the request target and header values are kept
/// byte for byte (targets may hold spaces or UTF-8; values may be folded over several lines).
#[derive(Clone, Debug)]
struct RawRequest {
    method: String,
    target: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl RawRequest {
    fn parse(text: &str) -> RawRequest {
        let (head, body) = match text.split_once("\n\n") {
            Some((h, b)) => (h, b),
            None => (text.trim_end_matches('\n'), ""),
        };
        let mut lines = head.split('\n');
        let request_line = lines.next().unwrap();
        let (method, rest) = request_line.split_once(' ').unwrap();
        let (target, version) = rest.rsplit_once(' ').unwrap();
        assert_eq!(version, "HTTP/1.1");
        let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
        for line in lines {
            if line.starts_with(' ') || line.starts_with('\t') {
                let last = headers.last_mut().unwrap();
                last.1.push(b'\n');
                last.1.extend_from_slice(line.as_bytes());
            } else {
                let (n, v) = line.split_once(':').unwrap();
                headers.push((n.to_owned(), v.as_bytes().to_vec()));
            }
        }
        RawRequest {
            method: method.to_owned(),
            target: target.to_owned(),
            headers,
            body: body.as_bytes().to_vec(),
        }
    }

    fn header_refs(&self) -> Vec<(&str, &[u8])> {
        self.headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect()
    }

    /// The same request as an `http::Request`, when the http crate can hold it.
    fn to_http(&self) -> Option<http::Request<Vec<u8>>> {
        let mut b = http::Request::builder()
            .method(self.method.as_str())
            .uri(self.target.as_str());
        for (n, v) in &self.headers {
            let v = http::HeaderValue::from_bytes(v).ok()?;
            b = b.header(n.as_str(), v);
        }
        b.body(self.body.clone()).ok()
    }
}

struct Case {
    name: String,
    dir: PathBuf,
    access_key_id: String,
    secret: String,
    token: Option<String>,
    region: String,
    service: String,
    time: SystemTime,
    normalize: bool,
    sign_body: bool,
    omit_token: bool,
    expires: u64,
    request: RawRequest,
}

impl Case {
    fn load(dir: &Path) -> Case {
        let ctx: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("context.json")).unwrap())
                .unwrap();
        let creds = &ctx["credentials"];
        let ts = ctx["timestamp"].as_str().unwrap().replace(['-', ':'], "");
        Case {
            name: dir.file_name().unwrap().to_string_lossy().into_owned(),
            dir: dir.to_owned(),
            access_key_id: creds["access_key_id"].as_str().unwrap().to_owned(),
            secret: creds["secret_access_key"].as_str().unwrap().to_owned(),
            token: creds["token"].as_str().map(str::to_owned),
            region: ctx["region"].as_str().unwrap().to_owned(),
            service: ctx["service"].as_str().unwrap().to_owned(),
            time: canonical::parse_amz_date(&ts).unwrap(),
            normalize: ctx["normalize"].as_bool().unwrap(),
            sign_body: ctx["sign_body"].as_bool().unwrap(),
            omit_token: ctx["omit_session_token"].as_bool().unwrap_or(false),
            expires: ctx["expiration_in_seconds"].as_u64().unwrap(),
            request: RawRequest::parse(&std::fs::read_to_string(dir.join("request.txt")).unwrap()),
        }
    }

    fn read(&self, file: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.join(file)).ok()
    }

    fn path_options(&self) -> PathOptions {
        PathOptions {
            normalize: self.normalize,
            double_encode: true,
        }
    }

    fn params(&self, location: SignatureLocation) -> SigningParams<'_> {
        let creds = SigningCredentials {
            access_key_id: &self.access_key_id,
            secret_access_key: &self.secret,
            session_token: self.token.as_deref(),
        };
        let mut p = SigningParams::new(
            creds,
            &self.region,
            self.time,
            PayloadSigning::Body(&self.request.body),
        );
        p.service = &self.service;
        p.content_sha256_header = self.sign_body;
        p.path = self.path_options();
        p.location = location;
        if self.omit_token {
            p.session_token = SessionTokenSigning::Unsigned;
        }
        p
    }

    fn verifier(&self) -> Verifier {
        Verifier::new(&self.region)
            .with_service(&self.service)
            .with_path_options(self.path_options())
    }

    fn keys(&self, secret: &str) -> StaticCredentials {
        let mut keys = StaticCredentials::new();
        keys.insert(&self.access_key_id, secret, self.token.clone(), None);
        keys
    }
}

fn cases() -> Vec<Case> {
    let Some(dir) = require_dir() else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("context.json").is_file())
        .collect();
    dirs.sort();
    assert_eq!(dirs.len(), 38, "the suite has 38 cases");
    dirs.iter().map(|d| Case::load(d)).collect()
}

#[test]
fn native_signer_reproduces_every_header_vector() {
    for case in cases() {
        let req = &case.request;
        let headers = req.header_refs();
        let view = RequestView::new(&req.method, &req.target, &headers);
        let out = sign_native(&view, &case.params(SignatureLocation::Headers)).unwrap();
        assert_eq!(
            out.canonical_request.as_deref(),
            case.read("header-canonical-request.txt").as_deref(),
            "{}: canonical request",
            case.name
        );
        assert_eq!(
            out.string_to_sign.as_deref(),
            case.read("header-string-to-sign.txt").as_deref(),
            "{}: string to sign",
            case.name
        );
        assert_eq!(
            Some(out.signature.as_str()),
            case.read("header-signature.txt").as_deref(),
            "{}: signature",
            case.name
        );
        // The Authorization header we emit is the one in the signed request.
        let signed = RawRequest::parse(&case.read("header-signed-request.txt").unwrap());
        let want = signed
            .headers
            .iter()
            .find(|(n, _)| n == "Authorization")
            .map(|(_, v)| String::from_utf8(v.clone()).unwrap());
        let got = out
            .headers
            .iter()
            .find(|(n, _)| n == "authorization")
            .map(|(_, v)| v.clone());
        assert_eq!(got, want, "{}: authorization", case.name);
    }
}

#[test]
fn native_signer_reproduces_every_query_vector() {
    for case in cases() {
        let req = &case.request;
        let headers = req.header_refs();
        let view = RequestView::new(&req.method, &req.target, &headers);
        let location = SignatureLocation::Query {
            expires_in: Duration::from_secs(case.expires),
        };
        let out = sign_native(&view, &case.params(location)).unwrap();
        assert_eq!(
            out.canonical_request.as_deref(),
            case.read("query-canonical-request.txt").as_deref(),
            "{}: canonical request",
            case.name
        );
        assert_eq!(
            out.string_to_sign.as_deref(),
            case.read("query-string-to-sign.txt").as_deref(),
            "{}: string to sign",
            case.name
        );
        assert_eq!(
            Some(out.signature.as_str()),
            case.read("query-signature.txt").as_deref(),
            "{}: signature",
            case.name
        );
    }
}

/// aws-sigv4 signs from an `http::Request`, which cannot hold three of the suite's inputs:
/// `get-space-*` (a raw space in the path is not a valid URI) and `get-header-value-multiline`
/// (a line break inside a header value). (`get-utf8`'s raw UTF-8 path is accepted by `http`.) Those are
/// checked against the native signer only (above). Every other case must match the suite.
#[cfg(feature = "sign")]
#[test]
fn aws_sigv4_reproduces_the_vectors_it_can_express() {
    let mut expressed = 0;
    for case in cases() {
        let Some(http_req) = case.request.to_http() else {
            assert!(
                [
                    "get-space-normalized",
                    "get-space-unnormalized",
                    "get-header-value-multiline"
                ]
                .contains(&case.name.as_str()),
                "{}: unexpectedly not expressible as http::Request",
                case.name
            );
            continue;
        };
        expressed += 1;
        let out =
            kvs_core::sigv4::sign(&http_req, &case.params(SignatureLocation::Headers)).unwrap();
        assert_eq!(
            Some(out.signature.as_str()),
            case.read("header-signature.txt").as_deref(),
            "{}: aws-sigv4 header signature",
            case.name
        );
        let location = SignatureLocation::Query {
            expires_in: Duration::from_secs(case.expires),
        };
        let out = kvs_core::sigv4::sign(&http_req, &case.params(location)).unwrap();
        assert_eq!(
            Some(out.signature.as_str()),
            case.read("query-signature.txt").as_deref(),
            "{}: aws-sigv4 query signature",
            case.name
        );
    }
    if expressed > 0 {
        assert_eq!(expressed, 35);
    }
}

fn verify(
    case: &Case,
    req: &RawRequest,
    body: &[u8],
    secret: &str,
    now: SystemTime,
) -> Result<kvs_core::sigv4::Verified, AuthError> {
    let headers = req.header_refs();
    let view = RequestView::new(&req.method, &req.target, &headers);
    let mut cache = SigningKeyCache::new(4);
    case.verifier().verify(
        &view,
        Payload::Bytes(body),
        &case.keys(secret),
        &mut cache,
        now,
    )
}

fn with_header(req: &RawRequest, name: &str, f: impl Fn(&mut Vec<u8>)) -> RawRequest {
    let mut r = req.clone();
    let h = r
        .headers
        .iter_mut()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .unwrap_or_else(|| panic!("no header {name}"));
    f(&mut h.1);
    r
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn check_rejections(case: &Case, signed: &RawRequest, signed_headers: &[String], form: &str) {
    let t = case.time;
    let body = &case.request.body;
    let ok = verify(case, signed, body, &case.secret, t);
    assert!(ok.is_ok(), "{} {form}: rejected: {ok:?}", case.name);

    for name in signed_headers {
        let changed = with_header(signed, name, |v| v.extend_from_slice(b"x"));
        let r = verify(case, &changed, body, &case.secret, t);
        assert!(
            r.is_err(),
            "{} {form}: accepted with {name} changed",
            case.name
        );
    }
    // Path.
    let mut changed = signed.clone();
    let (path, query) = match changed.target.split_once('?') {
        Some((p, q)) => (p.to_owned(), format!("?{q}")),
        None => (changed.target.clone(), String::new()),
    };
    changed.target = format!("{path}x{query}");
    assert!(
        verify(case, &changed, body, &case.secret, t).is_err(),
        "{} {form}: accepted with the path changed",
        case.name
    );
    // Query: one more parameter, and (when there is one) a changed value.
    let mut changed = signed.clone();
    changed.target = if changed.target.contains('?') {
        format!("{}&extra=1", changed.target)
    } else {
        format!("{}?extra=1", changed.target)
    };
    assert!(
        verify(case, &changed, body, &case.secret, t).is_err(),
        "{} {form}: accepted with a query parameter added",
        case.name
    );
    if let Some(i) = signed.target.find("Param1=value1") {
        let mut changed = signed.clone();
        changed.target.replace_range(i..i + 13, "Param1=value2");
        assert!(
            verify(case, &changed, body, &case.secret, t).is_err(),
            "{} {form}: accepted with a query value changed",
            case.name
        );
    }
    // Body.
    let mut other_body = body.clone();
    other_body.push(b'x');
    assert!(
        verify(case, signed, &other_body, &case.secret, t).is_err(),
        "{} {form}: accepted with another body",
        case.name
    );
    // Secret.
    let r = verify(
        case,
        signed,
        body,
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEX",
        t,
    );
    assert_eq!(
        r.unwrap_err(),
        AuthError::SignatureMismatch,
        "{} {form}: other secret",
        case.name
    );
    // Session token swapped (signed or not, it must be the stored one).
    if case.token.is_some() {
        let changed = if form == "header" {
            with_header(signed, "X-Amz-Security-Token", |v| v.push(b'A'))
        } else {
            let mut c = signed.clone();
            c.target = c
                .target
                .replace("X-Amz-Security-Token=", "X-Amz-Security-Token=A");
            c
        };
        let r = verify(case, &changed, body, &case.secret, t);
        assert!(
            r.is_err(),
            "{} {form}: accepted with another token",
            case.name
        );
    }
}

#[test]
fn verifier_accepts_header_vectors_and_rejects_every_change() {
    for case in cases() {
        let signed = RawRequest::parse(&case.read("header-signed-request.txt").unwrap());
        let creq = case.read("header-canonical-request.txt").unwrap();
        let signed_line = creq.lines().rev().nth(1).unwrap();
        let signed_headers: Vec<String> = signed_line.split(';').map(str::to_owned).collect();
        check_rejections(&case, &signed, &signed_headers, "header");

        // Date: one second later in X-Amz-Date.
        let changed = with_header(&signed, "X-Amz-Date", |v| {
            *v = b"20150830T123601Z".to_vec();
        });
        let r = verify(&case, &changed, &case.request.body, &case.secret, case.time);
        assert_eq!(
            r.unwrap_err(),
            AuthError::SignatureMismatch,
            "{}: date",
            case.name
        );

        // Clock skew: 5 min - 1 s either way is fine, 5 min + 1 s is not.
        let b = &case.request.body;
        for now in [case.time + secs(299), case.time - secs(299)] {
            assert!(
                verify(&case, &signed, b, &case.secret, now).is_ok(),
                "{}",
                case.name
            );
        }
        for now in [case.time + secs(301), case.time - secs(301)] {
            let e = verify(&case, &signed, b, &case.secret, now).unwrap_err();
            assert!(
                matches!(e, AuthError::SignatureExpired(_)),
                "{}: {e:?}",
                case.name
            );
            assert_eq!(e.aws_error_name(), "InvalidSignatureException");
            assert_eq!(e.http_status(), 403);
        }
        let e = verify(&case, &signed, b, &case.secret, case.time + secs(301)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Signature expired: 20150830T123600Z is now earlier than 20150830T123601Z (20150830T124101Z - 5 min.)"
        );

        // The same request through http::Request + RequestView::from_request, when expressible.
        if let Some(http_req) = signed.to_http() {
            let view = RequestView::from_request(&http_req);
            let mut cache = SigningKeyCache::default();
            let r = case.verifier().verify(
                &view,
                Payload::Bytes(b),
                &case.keys(&case.secret),
                &mut cache,
                case.time,
            );
            assert!(r.is_ok(), "{}: via http::Request: {r:?}", case.name);
        }
    }
}

#[test]
fn verifier_accepts_query_vectors_and_rejects_every_change() {
    for case in cases() {
        let signed = RawRequest::parse(&case.read("query-signed-request.txt").unwrap());
        let creq = case.read("query-canonical-request.txt").unwrap();
        let signed_line = creq.lines().rev().nth(1).unwrap();
        let signed_headers: Vec<String> = signed_line.split(';').map(str::to_owned).collect();
        check_rejections(&case, &signed, &signed_headers, "query");

        let b = &case.request.body;
        let mut changed = signed.clone();
        changed.target = changed
            .target
            .replace("X-Amz-Date=20150830T123600Z", "X-Amz-Date=20150830T123601Z");
        assert_eq!(
            verify(&case, &changed, b, &case.secret, case.time).unwrap_err(),
            AuthError::SignatureMismatch,
            "{}: date",
            case.name
        );
        let mut changed = signed.clone();
        changed.target = changed
            .target
            .replace("X-Amz-Expires=3600", "X-Amz-Expires=3601");
        assert!(verify(&case, &changed, b, &case.secret, case.time).is_err());

        // Presigned URLs are valid from 5 min before their date until X-Amz-Expires after it.
        let t = case.time;
        assert!(verify(&case, &signed, b, &case.secret, t - secs(299)).is_ok());
        assert!(verify(&case, &signed, b, &case.secret, t - secs(301)).is_err());
        assert!(verify(&case, &signed, b, &case.secret, t + secs(case.expires - 1)).is_ok());
        let e = verify(&case, &signed, b, &case.secret, t + secs(case.expires + 1)).unwrap_err();
        assert!(
            matches!(e, AuthError::SignatureExpired(_)),
            "{}: {e:?}",
            case.name
        );
    }
}
