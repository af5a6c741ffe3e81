//! TODO: module sigv4 (being written).
