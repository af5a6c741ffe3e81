//! EBML writer (being written).
