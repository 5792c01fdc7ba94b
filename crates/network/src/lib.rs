//! berth-network
