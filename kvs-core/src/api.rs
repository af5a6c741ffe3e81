//! TODO: module api (being written).
