//! The x509-limbo conformance harness: limbo testcases in, limbo results out.
