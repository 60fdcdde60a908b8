//! Name constraints (RFC 5280 §4.2.1.10) over DNS, IP, email, directoryName and URI.
