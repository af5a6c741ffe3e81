//! GetMedia document writer (being written).
