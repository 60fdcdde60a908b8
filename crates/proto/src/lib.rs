//! The kakehashi wire contract, generated at build time from `proto/kakehashi/v1`.
//!
//! With the `services` feature:
//! - [`pb::payments_server::Payments`] / [`pb::payments_client::PaymentsClient`]: the
//!   participant API of a node.
//! - [`pb::relay_server::Relay`] / [`pb::relay_client::RelayClient`]: the node-to-node API.
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors, for gRPC server reflection.
//!
//! Signed objects (quotes, instructions, receipts) travel as [`pb::Signed`] holding the exact
//! encoded bytes that were signed; the `SIGNING_DOMAIN_*` constants are the prefixes each kind
//! of signature covers.

#[cfg(feature = "services")]
pub mod codec;

/// Generated code for package `kakehashi.v1`.
#[allow(
    missing_docs,
    unreachable_pub,
    unused_qualifications,
    elided_lifetimes_in_paths,
    clippy::all,
    clippy::pedantic
)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/kakehashi.v1.rs"));
}

/// The encoded `FileDescriptorSet` of every kakehashi proto file (and the well-known types
/// they import), for tonic-reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/kakehashi_descriptor.bin"));

/// Prefix of the bytes a quote signature covers (then the encoded [`pb::Quote`]).
pub const SIGNING_DOMAIN_QUOTE: &[u8] = b"kakehashi-quote-v1\n";
/// Prefix of the bytes an instruction signature covers (then the encoded
/// [`pb::CreditTransferInstruction`]).
pub const SIGNING_DOMAIN_INSTRUCTION: &[u8] = b"kakehashi-pacs008-v1\n";
/// Prefix of the bytes a receipt signature covers (then the encoded [`pb::Receipt`]).
pub const SIGNING_DOMAIN_RECEIPT: &[u8] = b"kakehashi-receipt-v1\n";

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn descriptor_set_names_every_service() {
        let set = prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET)
            .expect("the build script wrote a valid descriptor set");
        let services: Vec<String> = set
            .file
            .iter()
            .flat_map(|file| file.service.iter().map(|s| s.name().to_owned()))
            .collect();
        assert!(services.contains(&"Payments".to_owned()), "{services:?}");
        assert!(services.contains(&"Relay".to_owned()), "{services:?}");
    }

    #[test]
    fn signing_domains_are_distinct_and_newline_terminated() {
        let domains = [
            SIGNING_DOMAIN_QUOTE,
            SIGNING_DOMAIN_INSTRUCTION,
            SIGNING_DOMAIN_RECEIPT,
        ];
        for (i, a) in domains.iter().enumerate() {
            assert_eq!(a.last(), Some(&b'\n'));
            for b in &domains[i + 1..] {
                assert!(!a.starts_with(b) && !b.starts_with(a));
            }
        }
    }
}
