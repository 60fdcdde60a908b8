//! Reading objects that arrive as PEM (RFC 7468) or as raw DER, for every caller that takes a
//! file an operator may have saved either way (CRLs, anchors).

/// Most PEM blocks read from one input: far above any real bundle, and it bounds the work.
pub const PEM_BLOCKS_MAX: usize = 1024;

/// The DER contents of every PEM block labelled `label` in `bytes`, or `bytes` itself as one
/// DER object when it holds no PEM at all. Blocks with other labels are skipped; an empty
/// result means PEM without a block of that label, and the caller says what was expected.
pub fn blocks_or_der(bytes: &[u8], label: &str) -> Result<Vec<Vec<u8>>, String> {
    if !looks_like_pem(bytes) {
        return Ok(vec![bytes.to_vec()]);
    }
    let mut blocks = Vec::new();
    for (index, pem) in x509_parser::pem::Pem::iter_from_buffer(bytes).enumerate() {
        if index >= PEM_BLOCKS_MAX {
            return Err(format!("more than {PEM_BLOCKS_MAX} PEM blocks"));
        }
        let pem = pem.map_err(|e| format!("PEM block {index}: {e}"))?;
        if pem.label == label {
            blocks.push(pem.contents);
        }
    }
    Ok(blocks)
}

/// PEM is ASCII text with a BEGIN line somewhere; DER almost never is both.
fn looks_like_pem(bytes: &[u8]) -> bool {
    bytes
        .windows(b"-----BEGIN".len())
        .any(|w| w == b"-----BEGIN")
        && bytes.is_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &str = "-----BEGIN X509 CRL-----\naGVs\nbG8h\n-----END X509 CRL-----\n";
    const OTHER: &str = "-----BEGIN CERTIFICATE-----\naGk=\n-----END CERTIFICATE-----\n";

    #[test]
    fn decodes_wrapped_blocks_of_the_label_and_skips_others() {
        let text = format!("{OTHER}{HELLO}{HELLO}");
        let blocks = blocks_or_der(text.as_bytes(), "X509 CRL").unwrap();
        assert_eq!(blocks, vec![b"hello!".to_vec(), b"hello!".to_vec()]);
        assert_eq!(
            blocks_or_der(OTHER.as_bytes(), "X509 CRL").unwrap(),
            Vec::<Vec<u8>>::new()
        );
    }

    #[test]
    fn passes_der_through_whole() {
        let der = [0x30, 0x03, 0x02, 0x01, 0x05];
        assert_eq!(blocks_or_der(&der, "X509 CRL").unwrap(), vec![der.to_vec()]);
    }

    #[test]
    fn rejects_bad_base64_and_unterminated_blocks() {
        let bad = "-----BEGIN X509 CRL-----\naGV*bG8=\n-----END X509 CRL-----\n";
        assert!(blocks_or_der(bad.as_bytes(), "X509 CRL").is_err());
        let open = "-----BEGIN X509 CRL-----\naGVsbG8h\n";
        assert!(blocks_or_der(open.as_bytes(), "X509 CRL").is_err());
    }
}
