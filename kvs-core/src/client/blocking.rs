//! Blocking wrappers: [`Client`] and [`Producer`] run the async ones on a private tokio
//! runtime.

use std::sync::Arc;
use std::time::Duration;

use super::{ClientBuilder, ClientError, FinishReport};
use crate::api::{
    ApiOperation, CreateStreamResponse, DescribeStreamResponse, EmptyResponse, Fragment,
    FragmentSelector, StreamInfo,
};
use crate::mkv::{Frame, TrackInfo};
use crate::session::{FrameId, SessionConfig, SessionMetrics};

/// The blocking KVS client.
#[derive(Debug, Clone)]
pub struct Client {
    runtime: Arc<tokio::runtime::Runtime>,
    inner: super::Client,
}

impl Client {
    /// Builds the client from `builder` with its own runtime (two worker threads).
    pub fn new(builder: ClientBuilder) -> Result<Client, ClientError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| ClientError::Config(format!("cannot start the tokio runtime: {e}")))?;
        Ok(Client {
            runtime: Arc::new(runtime),
            inner: builder.build()?,
        })
    }

    /// A client configured from the environment and shared files.
    pub fn from_env() -> Result<Client, ClientError> {
        Client::new(ClientBuilder::default())
    }

    /// The async client inside.
    pub fn as_async(&self) -> &super::Client {
        &self.inner
    }

    /// Any JSON operation.
    pub fn call<Op: ApiOperation>(&self, op: &Op) -> Result<Op::Response, ClientError> {
        self.runtime.block_on(self.inner.call(op))
    }

    /// CreateStream.
    pub fn create_stream(
        &self,
        name: &str,
        retention_hours: i64,
    ) -> Result<CreateStreamResponse, ClientError> {
        self.runtime
            .block_on(self.inner.create_stream(name, retention_hours))
    }

    /// DescribeStream.
    pub fn describe_stream(&self, name: &str) -> Result<DescribeStreamResponse, ClientError> {
        self.runtime.block_on(self.inner.describe_stream(name))
    }

    /// Every stream.
    pub fn list_streams(&self) -> Result<Vec<StreamInfo>, ClientError> {
        self.runtime.block_on(self.inner.list_streams())
    }

    /// DeleteStream.
    pub fn delete_stream(&self, name: &str) -> Result<EmptyResponse, ClientError> {
        self.runtime.block_on(self.inner.delete_stream(name))
    }

    /// Every fragment of a selector, sorted.
    pub fn list_fragments(
        &self,
        name: &str,
        selector: Option<FragmentSelector>,
    ) -> Result<Vec<Fragment>, ClientError> {
        self.runtime
            .block_on(self.inner.list_all_fragments(name, selector))
    }

    /// Starts a producer for `name`; `configure` adjusts the session configuration.
    pub fn producer(
        &self,
        name: &str,
        tracks: Vec<TrackInfo>,
        configure: impl FnOnce(&mut SessionConfig),
    ) -> Result<Producer, ClientError> {
        let _guard = self.runtime.enter();
        let inner = self
            .inner
            .producer(name, tracks)
            .configure(configure)
            .start()?;
        Ok(Producer {
            runtime: self.runtime.clone(),
            inner: Some(inner),
        })
    }
}

/// The blocking producer.
#[derive(Debug)]
pub struct Producer {
    runtime: Arc<tokio::runtime::Runtime>,
    inner: Option<super::Producer>,
}

impl Producer {
    fn get(&self) -> Result<&super::Producer, ClientError> {
        self.inner
            .as_ref()
            .ok_or_else(|| ClientError::producer("the producer is finished"))
    }

    /// Queues a frame, blocking while the buffer is full.
    pub fn put_frame(&self, frame: Frame) -> Result<FrameId, ClientError> {
        let p = self.get()?;
        self.runtime.block_on(p.put_frame(frame))
    }

    /// The counters now.
    pub fn metrics(&self) -> Result<SessionMetrics, ClientError> {
        Ok(self.get()?.metrics())
    }

    /// Ends the stream and waits for the last final ACK.
    pub fn finish(mut self) -> Result<FinishReport, ClientError> {
        let p = self
            .inner
            .take()
            .ok_or_else(|| ClientError::producer("the producer is finished"))?;
        self.runtime.block_on(p.finish())
    }

    /// Waits up to `timeout` (used by tests and pacing loops).
    pub fn sleep(&self, timeout: Duration) {
        self.runtime.block_on(tokio::time::sleep(timeout));
    }
}
