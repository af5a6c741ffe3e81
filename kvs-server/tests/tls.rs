//! HTTPS with `--tls-self-signed`: the certificate written to the data directory lets a rustls
//! client verify the server, and signed calls work over it.

mod common;

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use kvs_core::api::{ApiOperation, ApiResponse, ListStreamsRequest};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_signed_tls_serves_signed_calls() {
    let dir = temp_dir("tls");
    let mut config = kvs_server::ServerConfig::new(dir.join("data"));
    config.port = 0;
    config.tls = kvs_server::TlsMode::SelfSigned;
    let server = kvs_server::Server::bind(config).await.unwrap();
    assert!(server.base_url().starts_with("https://"));
    let ca = server.ca_cert().unwrap().to_owned();
    assert!(server.banner().contains(&ca.display().to_string()));
    let ep = Endpoint::of(&server);

    let pem = std::fs::read(&ca).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let tcp = tokio::net::TcpStream::connect(ep.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);

    create_stream_tls(&mut sender, &ep).await;
    server.shutdown().await;
}

async fn create_stream_tls(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    ep: &Endpoint,
) {
    let req = ListStreamsRequest {
        max_results: None,
        next_token: None,
        stream_name_condition: None,
    };
    let uri: http::Uri = format!("https://{}", ep.addr).parse().unwrap();
    let mut request = req.to_http(&uri).unwrap();
    sign_at(ep, &mut request, SystemTime::now());
    let response = sender.send_request(request.map(Full::new)).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let response = http::Response::from_parts(parts, body);
    assert_eq!(response.status(), 200);
    kvs_core::api::ListStreamsResponse::from_http(&response).unwrap();
}
