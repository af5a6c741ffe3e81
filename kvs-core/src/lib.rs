//! # kvs-core
//!
//! The sans-IO core of kvs, an open toolkit for Amazon Kinesis Video Streams (KVS).
//!
//! Nothing in this crate opens a socket or a file, starts a thread, reads a clock or draws random
//! numbers: time, wall-clock timestamps and random bytes are inputs. Every parser is push-based,
//! bounded and returns typed errors; frame payloads are zero-copy [`bytes::Bytes`] slices.
//!
//! | module | what it holds |
//! |---|---|
//! | [`ebml`] | EBML variable-length integers, element headers, typed readers and a writer |
//! | [`mkv`] | the streaming MKV decoder and the KVS producer / GetMedia encoders |
//! | [`media`] | codec-private helpers: Annex-B/AVCC, avcC, hvcC, SPS dimensions, AAC, G.711 |
//! | [`mp4`] | the fragmented-MP4 writer GetClip serves (H.264/H.265, AAC, G.711) |
//! | [`fragment`] | KVS fragment metadata: `AWS_KINESISVIDEO_*` tags, fragment numbers, timestamps |
//! | [`index`] | the per-stream fragment timestamp index: range pages, seeks, retention, its record log |
//! | [`api`] | the KVS HTTP API as typed operations, for clients and servers alike |
//! | [`sigv4`] | SigV4 signing (feature `sign`) and verification |
//! | [`ack`] | the PutMedia acknowledgement stream: incremental parser and writer |
//! | [`crc32`] | the CRC-32 used by EBML CRC-32 elements and the index log |
//! | [`credentials`] | AWS credentials, shared config files, the IoT credentials provider |
//! | [`session`] | the PutMedia producer session and the GetMedia consumer cursor (state machines) |
//! | `client` | (feature `client`) the tokio/reqwest transport: `Client`, `blocking::Client`, `Producer`, media streams |
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod ack;
pub mod api;
mod calendar;
#[cfg(feature = "client")]
pub mod client;
pub mod crc32;
pub mod credentials;
pub mod ebml;
pub mod fragment;
pub mod index;
pub mod media;
pub mod mkv;
pub mod mp4;
pub mod session;
pub mod sigv4;
