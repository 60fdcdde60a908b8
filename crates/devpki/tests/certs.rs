//! The committed development PKI (`certs/`) and its agreement, as an auditor checks them: the
//! files are exactly what the generator makes from the recorded seed, and the agreement is
//! signed by every party.

use kakehashi_pki::mra::Mra;

use crate::util::{certs_dir, committed_seed};

// --- The committed files are the generator's output ---------------------------------------

#[test]
fn committed_certs_are_exactly_what_the_generator_makes_from_the_recorded_seed() {
    let pki = kakehashi_devpki::generate(&committed_seed()).unwrap();
    for (relative, bytes) in &pki.files {
        let committed = std::fs::read(certs_dir().join(relative))
            .unwrap_or_else(|e| panic!("certs/{} is missing: {e}", relative.display()));
        assert!(
            committed == *bytes,
            "certs/{} differs from the generator's output; regenerate with \
             `cargo run -p kakehashi -- pki init --out certs --force --seed \"$(cat certs/dev-seed.txt)\"`",
            relative.display()
        );
    }
}

// --- The agreement ------------------------------------------------------------------------

#[test]
fn committed_agreement_is_signed_by_every_party() {
    let mra = Mra::load(&certs_dir().join("mra.toml")).unwrap();
    mra.verify_signatures().unwrap();
    assert_eq!(mra.signed_parties(), ["JP", "SG", "TH"]);
}
