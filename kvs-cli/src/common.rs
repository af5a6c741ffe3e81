//! Options shared by the client commands, and helpers.

use std::path::PathBuf;

use clap::Args as ClapArgs;
use kvs_core::api::Timestamp;
use kvs_core::client::{Client, ClientBuilder};

/// Global connection options.
#[derive(Debug, Clone, ClapArgs, Default)]
pub struct GlobalArgs {
    /// Control-plane endpoint (else AWS_ENDPOINT_URL_KINESIS_VIDEO, AWS_ENDPOINT_URL, the
    /// profile's endpoint_url, or the AWS endpoint of the region).
    #[arg(long, global = true)]
    pub endpoint_url: Option<String>,
    /// Region (else AWS_REGION, AWS_DEFAULT_REGION, the profile's region).
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// Shared config/credentials profile (else AWS_PROFILE, default).
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// Extra CA certificate (PEM) to trust, e.g. `<data dir>/tls/cert.pem` of
    /// `kvs serve --tls-self-signed`.
    #[arg(long, global = true)]
    pub ca_cert: Option<PathBuf>,
}

impl GlobalArgs {
    /// A client builder with these options.
    pub fn builder(&self) -> Result<ClientBuilder, String> {
        let mut b = Client::builder();
        if let Some(e) = &self.endpoint_url {
            b = b.endpoint_url(e);
        }
        if let Some(r) = &self.region {
            b = b.region(r);
        }
        if let Some(p) = &self.profile {
            b = b.profile(p);
        }
        if let Some(ca) = &self.ca_cert {
            let pem = std::fs::read(ca)
                .map_err(|e| format!("cannot read the CA certificate {}: {e}", ca.display()))?;
            b = b.add_root_certificate_pem(pem);
        }
        Ok(b)
    }

    /// The client.
    pub fn client(&self) -> Result<Client, String> {
        self.builder()?.build().map_err(|e| e.to_string())
    }
}

/// A multi-threaded runtime for a command.
pub fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

/// Wall-clock epoch milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Parses a time: epoch seconds (`1700000000.5`), RFC 3339 (`2026-01-02T03:04:05Z`), `now`, or
/// `now-30s` / `now-5m` / `now-2h`.
pub fn parse_time(text: &str) -> Result<Timestamp, String> {
    let now = now_ms();
    if text == "now" {
        return Ok(Timestamp::from_millis(now));
    }
    if let Some(rest) = text.strip_prefix("now-") {
        let (num, unit) = rest.split_at(rest.len().saturating_sub(1));
        let n: u64 = num
            .parse()
            .map_err(|_| format!("bad relative time {text:?}; use now-30s, now-5m or now-2h"))?;
        let ms = match unit {
            "s" => n * 1000,
            "m" => n * 60_000,
            "h" => n * 3_600_000,
            _ => return Err(format!("bad unit in {text:?}; use s, m or h")),
        };
        return Ok(Timestamp::from_millis(now.saturating_sub(ms)));
    }
    if let Ok(t) = Timestamp::parse_secs(text) {
        return Ok(t);
    }
    kvs_core::credentials::parse_rfc3339(text)
        .map(|t| {
            Timestamp::from_millis(
                t.duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0),
            )
        })
        .map_err(|_| {
            format!("cannot read time {text:?}: give epoch seconds, RFC 3339, now or now-30s")
        })
}
