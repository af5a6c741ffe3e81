//! Push decoder (being written).
