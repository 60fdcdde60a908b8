//! rustls client- and server-certificate verifiers backed by mutual recognition.
