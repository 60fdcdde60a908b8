//! RFC 5280 §6.1 basic path validation over one candidate path.
