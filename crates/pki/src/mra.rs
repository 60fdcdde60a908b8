//! The mutual-recognition agreement: schema, canonical bytes, signatures and recognition.
