//! `kvs serve`: the local KVS-compatible server.

use std::path::PathBuf;

use clap::Args as ClapArgs;

/// Options of `kvs serve`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free port; the banner says which).
    #[arg(long, default_value_t = 4567)]
    port: u16,
    /// Data directory (default: $XDG_DATA_HOME/kvs or ~/.local/share/kvs).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Region of the SigV4 scope and of ARNs.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Most concurrent client connections; beyond it new ones get 503 ServiceUnavailable.
    #[arg(long, default_value_t = kvs_server::Limits::default().max_connections)]
    max_connections: usize,
    /// Most bytes all PutMedia connections together may hold in memory; beyond it producers
    /// are slowed down by TCP backpressure (default 1 GiB).
    #[arg(long, default_value_t = kvs_server::Limits::default().max_ingest_bytes)]
    max_ingest_bytes: u64,
    /// Shared-credentials (INI) file whose key pairs are accepted (default: a development pair
    /// generated at first start and kept in the data directory). Per profile, `kvs_allow`
    /// (actions, e.g. `kinesisvideo:GetMedia, kinesisvideo:Describe*`), `kvs_streams` (stream
    /// globs, e.g. `cam-*`), `kvs_deny`, `kvs_expiration` (RFC 3339) and `kvs_policy_file` (IAM
    /// policy JSON) restrict a key; see the README's "Access control".
    #[arg(long)]
    credentials: Option<PathBuf>,
    /// TLS certificate chain (PEM); needs --tls-key.
    #[arg(long, requires = "tls_key", conflicts_with = "tls_self_signed")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); needs --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve HTTPS with a certificate generated at start (written under the data directory).
    #[arg(long)]
    tls_self_signed: bool,
    /// Enforce the service's per-stream quotas: 5 calls per second per stream and operation for
    /// control-plane calls, GetMedia and PutMedia (ClientLimitExceededException beyond), and one
    /// PutMedia connection per stream (ConnectionLimitExceededException for a second one).
    #[arg(long)]
    enforce_quotas: bool,
    /// Master key file of encryption at rest: one `<key-id> <64 hex digits>` per line (e.g.
    /// `alias/aws/kinesisvideo ...`), owner-only. Created with a fresh default key when it does
    /// not exist (default: master-keys in the data directory).
    #[arg(long)]
    master_key_file: Option<PathBuf>,
}

/// Runs the server until Ctrl-C or SIGTERM.
pub fn run(args: &Args) -> Result<(), String> {
    let mut config = kvs_server::ServerConfig::new(
        args.data_dir
            .clone()
            .unwrap_or_else(kvs_server::default_data_dir),
    );
    config.host = args.host.clone();
    config.port = args.port;
    config.region = args.region.clone();
    config.limits.max_connections = args.max_connections;
    config.limits.max_ingest_bytes = args.max_ingest_bytes;
    config.credentials_file = args.credentials.clone();
    config.enforce_quotas = args.enforce_quotas;
    config.master_key_file = args.master_key_file.clone();
    config.tls = match (&args.tls_cert, &args.tls_key, args.tls_self_signed) {
        (Some(cert), Some(key), _) => kvs_server::TlsMode::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        (_, _, true) => kvs_server::TlsMode::SelfSigned,
        _ => kvs_server::TlsMode::None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let server = kvs_server::Server::bind(config)
            .await
            .map_err(|e| e.to_string())?;
        print!("{}", server.banner());
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| e.to_string())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        server.shutdown().await;
        Ok(())
    })
}
