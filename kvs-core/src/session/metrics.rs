//! Counters a producer session keeps (read them with `PutMediaSession::metrics`).

/// Producer session counters. All byte counts are MKV bytes (headers included).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionMetrics {
    /// Frames accepted by `push_frame`.
    pub frames_pushed: u64,
    /// Frames reported dropped or failed (any reason).
    pub frames_dropped: u64,
    /// Encoded bytes accepted into the buffer.
    pub bytes_pushed: u64,
    /// Fragments opened.
    pub fragments_started: u64,
    /// Fragments whose first byte went out (counted again when replayed).
    pub fragments_sent: u64,
    /// BUFFERING ACKs matched to a fragment.
    pub acks_buffering: u64,
    /// RECEIVED ACKs matched to a fragment.
    pub acks_received: u64,
    /// PERSISTED ACKs matched to a fragment.
    pub acks_persisted: u64,
    /// ERROR ACKs.
    pub acks_error: u64,
    /// IDLE ACKs.
    pub acks_idle: u64,
    /// ACKs that matched no buffered fragment, or arrived on a closed connection.
    pub acks_ignored: u64,
    /// Fragments fully acknowledged (the configured level) and released.
    pub fragments_acked: u64,
    /// Fragments failed by a non-retriable ERROR ACK.
    pub fragments_failed: u64,
    /// Fragments dropped from the buffer unsent (buffer full, finish timeout).
    pub fragments_dropped: u64,
    /// Bytes handed out by `poll_transmit` (stream headers included).
    pub bytes_sent: u64,
    /// Bytes sent again after a rewind.
    pub bytes_retransmitted: u64,
    /// Connections requested.
    pub connections: u64,
    /// Rewinds to the first unacknowledged fragment.
    pub rewinds: u64,
    /// Connection rotations (switches to a fresh connection before the 45-minute limit).
    pub rotations: u64,
    /// Connections closed as stale (no BUFFERING ACK, or no final ACK, in time).
    pub stale_connections: u64,
    /// Times backpressure switched on.
    pub backpressure_events: u64,
    /// Sum of ACK latencies (first byte sent → final ACK), in ms.
    pub ack_latency_sum_ms: u64,
    /// Largest ACK latency, in ms.
    pub ack_latency_max_ms: u64,
    /// Latest ACK latency, in ms.
    pub ack_latency_last_ms: u64,
    /// Current buffered bytes.
    pub buffer_bytes: u64,
    /// Current buffered fragments.
    pub buffer_fragments: u64,
    /// Current buffered media duration (oldest fragment start to newest frame), in ms.
    pub buffer_duration_ms: u64,
    /// Largest buffered bytes seen.
    pub buffer_bytes_peak: u64,
}

impl SessionMetrics {
    /// Mean ACK latency in ms (0 before the first acknowledged fragment).
    pub fn ack_latency_mean_ms(&self) -> u64 {
        self.ack_latency_sum_ms
            .checked_div(self.fragments_acked)
            .unwrap_or(0)
    }
}
