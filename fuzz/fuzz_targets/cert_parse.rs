//! Arbitrary bytes as one DER certificate and as a PEM-or-DER bundle: parsing either returns a
//! certificate or an error, never a panic, and every accessor of a parsed certificate works.
#![no_main]

use kakehashi_pki::cert::Cert;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cert) = Cert::from_der(data) {
        touch(&cert);
    }
    if let Ok(certs) = Cert::parse_pem_or_der_bundle(data) {
        for cert in &certs {
            touch(cert);
        }
    }
});

fn touch(cert: &Cert) {
    let _ = cert.subject().to_rfc4514();
    let _ = cert.issuer().to_rfc4514();
    let _ = cert.serial_hex();
    let _ = cert.cert_ref(0);
    let _ = cert.is_self_issued();
    let _ = cert.policy_info();
    let _ = cert.signature_algorithm();
    // A certificate's own signature check exercises the key and algorithm decoding.
    let _ = kakehashi_pki::signature::verify_cert_signed_by(cert, cert);
}
