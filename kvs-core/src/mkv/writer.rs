//! Producer stream encoder (being written).
