//! TODO: module ack (being written).
