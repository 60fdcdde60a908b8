//! Errors of the verifier, each with the rule it cites and a rank for picking the most specific failure.
