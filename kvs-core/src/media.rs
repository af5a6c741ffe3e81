//! TODO: module media (being written).
