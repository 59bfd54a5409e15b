//! Replay (CONTRACT §4).
