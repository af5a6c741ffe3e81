//! `kvs._kvs._Server`: the local KVS-compatible server (kvs-server) running in-process on its own
//! tokio runtime (background threads). `kvs.Server` in Python wraps it as a context manager.

use std::path::PathBuf;
use std::time::Duration;

use pyo3::prelude::*;

use crate::errors::kvs_error;

/// A running local server.
#[pyclass(module = "kvs._kvs")]
pub struct _Server {
    runtime: Option<tokio::runtime::Runtime>,
    server: Option<kvs_server::Server>,
    base_url: String,
    access_key_id: String,
    secret_access_key: String,
    region: String,
    data_dir: String,
    ca_cert: Option<String>,
}

#[pymethods]
impl _Server {
    /// Starts a server on `host:port` (port 0: a free one) with its data in `data_dir`.
    #[new]
    #[pyo3(signature = (data_dir, *, port = 0, tls = false, host = "127.0.0.1",
        region = "us-east-1", transition_delay_ms = None, threads = 2,
        get_media_idle_end_ms = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        data_dir: PathBuf,
        port: u16,
        tls: bool,
        host: &str,
        region: &str,
        transition_delay_ms: Option<u64>,
        threads: usize,
        get_media_idle_end_ms: Option<u64>,
    ) -> PyResult<Self> {
        let mut config = kvs_server::ServerConfig::new(data_dir);
        config.port = port;
        config.host = host.to_owned();
        config.region = region.to_owned();
        if tls {
            config.tls = kvs_server::TlsMode::SelfSigned;
        }
        if let Some(ms) = transition_delay_ms {
            config.limits.transition_delay = Duration::from_millis(ms);
        }
        if let Some(ms) = get_media_idle_end_ms {
            config.limits.get_media_idle_end = Duration::from_millis(ms);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("kvs-server")
            .enable_all()
            .build()
            .map_err(|e| {
                kvs_error(
                    py,
                    "KvsError",
                    format!("starting the server runtime: {e}"),
                    &[],
                )
            })?;
        let server = py
            .detach(|| runtime.block_on(kvs_server::Server::bind(config)))
            .map_err(|e| kvs_error(py, "KvsError", format!("starting the server: {e}"), &[]))?;
        Ok(_Server {
            base_url: server.base_url().to_owned(),
            access_key_id: server.credentials().access_key_id.clone(),
            secret_access_key: server.credentials().secret_access_key.clone(),
            region: server.region().to_owned(),
            data_dir: server.data_dir().display().to_string(),
            ca_cert: server.ca_cert().map(|p| p.display().to_string()),
            runtime: Some(runtime),
            server: Some(server),
        })
    }

    /// `http://127.0.0.1:PORT` (or `https://`).
    #[getter]
    fn endpoint_url(&self) -> &str {
        &self.base_url
    }
    /// The development access key id the server accepts.
    #[getter]
    fn access_key_id(&self) -> &str {
        &self.access_key_id
    }
    /// The matching secret access key.
    #[getter]
    fn secret_access_key(&self) -> &str {
        &self.secret_access_key
    }
    /// The region of the server's SigV4 scope and ARNs.
    #[getter]
    fn region(&self) -> &str {
        &self.region
    }
    /// Where the server keeps its data.
    #[getter]
    fn data_dir(&self) -> &str {
        &self.data_dir
    }
    /// Under TLS: the self-signed certificate (PEM file) clients should trust.
    #[getter]
    fn ca_cert(&self) -> Option<&str> {
        self.ca_cert.as_deref()
    }
    /// True until `close()`.
    #[getter]
    fn running(&self) -> bool {
        self.server.is_some()
    }

    /// Stops the server and its threads (idempotent).
    fn close(&mut self, py: Python<'_>) {
        let server = self.server.take();
        let runtime = self.runtime.take();
        py.detach(move || {
            if let Some(rt) = runtime {
                if let Some(s) = server {
                    rt.block_on(s.shutdown());
                }
                rt.shutdown_timeout(Duration::from_secs(2));
            }
        });
    }
}

impl Drop for _Server {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            if let Some(s) = self.server.take() {
                rt.block_on(s.shutdown());
            }
            rt.shutdown_background();
        }
    }
}
