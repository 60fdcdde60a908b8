//! Integration tests of the path validator, through the public API only. Each module covers
//! one family of rules with a positive and a negative case, on chains generated with rcgen,
//! and every case goes through one `check` helper.

use kakehashi_pki::UnixTime;
use kakehashi_pki::cert::Cert;
use kakehashi_pki::crl::CrlSet;
use kakehashi_pki::validate::{PeerName, Profile, ValidationOptions, verify_chain};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SignatureAlgorithm,
};

/// 2026-06-01T00:00:00Z: inside every validity window below unless a test moves it.
const NOW: UnixTime = UnixTime(1_780_272_000);

/// A generated CA: its parameters and key (to issue more) and the parsed certificate.
struct Ca {
    params: CertificateParams,
    key: KeyPair,
    cert: Cert,
}

fn base_params(cn: &str, sans: &[&str]) -> CertificateParams {
    let mut params =
        CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2030, 1, 1);
    params.use_authority_key_identifier_extension = true;
    params
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut params = base_params(cn, &[]);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

impl Ca {
    fn root(cn: &str) -> Self {
        Self::root_with(cn, &rcgen::PKCS_ED25519, |_| {})
    }

    fn root_with(
        cn: &str,
        alg: &'static SignatureAlgorithm,
        edit: impl FnOnce(&mut CertificateParams),
    ) -> Self {
        let mut params = ca_params(cn);
        params.use_authority_key_identifier_extension = false;
        edit(&mut params);
        let key = KeyPair::generate_for(alg).unwrap();
        let cert = Cert::from_der(params.self_signed(&key).unwrap().der()).unwrap();
        Self { params, key, cert }
    }

    fn issue(
        &self,
        params: CertificateParams,
        alg: &'static SignatureAlgorithm,
    ) -> (KeyPair, Cert, CertificateParams) {
        let key = KeyPair::generate_for(alg).unwrap();
        let issuer = Issuer::from_params(&self.params, &self.key);
        let der = params.signed_by(&key, &issuer).unwrap();
        (key, Cert::from_der(der.der()).unwrap(), params)
    }

    /// Certifies another CA's existing key and name (a cross-certificate).
    fn certify(&self, subject: &Self) -> Cert {
        let issuer = Issuer::from_params(&self.params, &self.key);
        Cert::from_der(
            subject
                .params
                .signed_by(&subject.key, &issuer)
                .unwrap()
                .der(),
        )
        .unwrap()
    }

    fn ca(&self, cn: &str, edit: impl FnOnce(&mut CertificateParams)) -> Self {
        let mut params = ca_params(cn);
        edit(&mut params);
        let (key, cert, params) = self.issue(params, &rcgen::PKCS_ED25519);
        Self { params, key, cert }
    }

    fn leaf(&self, sans: &[&str], edit: impl FnOnce(&mut CertificateParams)) -> Cert {
        let mut params = base_params("leaf", sans);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        edit(&mut params);
        self.issue(params, &rcgen::PKCS_ECDSA_P256_SHA256).1
    }
}

fn opts() -> ValidationOptions {
    ValidationOptions::new(NOW)
}

fn server_opts(name: &str) -> ValidationOptions {
    let mut o = opts();
    o.profile = Profile::WebPki;
    o.required_ekus = vec![kakehashi_pki::purpose::EKU_SERVER_AUTH.to_owned()];
    o.peer_name = Some(match name.parse() {
        Ok(ip) => PeerName::Ip(ip),
        Err(_) => PeerName::Dns(name.to_owned()),
    });
    o
}

/// Validates `leaf` over `pool` to `anchors`. `expected` is `Ok(path length)` for a valid
/// chain, or `Err(variant)` naming the error variant the rejection must carry.
#[track_caller]
fn check(
    leaf: &Cert,
    pool: &[&Cert],
    anchors: &[&Cert],
    opts: &ValidationOptions,
    expected: Result<usize, &str>,
) {
    let pool: Vec<Cert> = pool.iter().map(|c| (*c).clone()).collect();
    let anchors: Vec<Cert> = anchors.iter().map(|c| (*c).clone()).collect();
    let result = verify_chain(leaf, &pool, &anchors, &CrlSet::new(), opts);
    match (result, expected) {
        (Ok(path), Ok(len)) => {
            assert_eq!(path.path().len(), len, "path {:?}", path.path());
            assert!(
                path.checks()
                    .iter()
                    .all(|c| c.outcome != kakehashi_pki::Outcome::Fail)
            );
        }
        (Err(err), Err(variant)) => {
            let debug = format!("{:?}", err.error());
            assert!(debug.starts_with(variant), "expected {variant}, got {err}");
        }
        (Ok(path), Err(variant)) => panic!("expected {variant}, but validated {:?}", path.path()),
        (Err(err), Ok(_)) => panic!("expected a valid chain, got {err}"),
    }
}

mod signatures_and_chaining {
    use super::*;

    #[test]
    fn accepts_root_intermediate_leaf_with_mixed_algorithms() {
        let root = Ca::root_with("Root", &rcgen::PKCS_ECDSA_P384_SHA384, |_| {});
        let ica = root.ca("ICA", |_| {});
        let leaf = ica.leaf(&["a.example.jp"], |_| {});
        check(&leaf, &[&ica.cert], &[&root.cert], &opts(), Ok(3));
    }

    #[test]
    fn rejects_leaf_when_no_issuer_is_known() {
        let root = Ca::root("Root");
        let other = Ca::root("Other");
        let leaf = root.leaf(&["a.example.jp"], |_| {});
        check(&leaf, &[], &[&other.cert], &opts(), Err("UnknownIssuer"));
    }

    #[test]
    fn rejects_signature_by_a_different_key_under_the_same_name() {
        let root = Ca::root("Root");
        let impostor = Ca::root("Root");
        let leaf = impostor.leaf(&["a.example.jp"], |_| {});
        check(&leaf, &[], &[&root.cert], &opts(), Err("BadSignature"));
    }
}

mod validity {
    use super::*;

    #[test]
    fn accepts_at_not_after_exactly_and_rejects_one_second_later() {
        let root = Ca::root("Root");
        let leaf = root.leaf(&["a.example.jp"], |p| {
            p.not_after = rcgen::date_time_ymd(2026, 6, 1);
        });
        check(&leaf, &[], &[&root.cert], &opts(), Ok(2));
        let mut later = opts();
        later.time = UnixTime(NOW.0 + 1);
        check(&leaf, &[], &[&root.cert], &later, Err("Expired"));
    }

    #[test]
    fn rejects_leaf_not_yet_valid() {
        let root = Ca::root("Root");
        let leaf = root.leaf(&["a.example.jp"], |p| {
            p.not_before = rcgen::date_time_ymd(2026, 6, 2);
        });
        check(&leaf, &[], &[&root.cert], &opts(), Err("NotYetValid"));
    }

    #[test]
    fn rejects_expired_intermediate_but_finds_a_fresh_cross_certificate() {
        let root = Ca::root("Root");
        let expired = root.ca("ICA", |p| p.not_after = rcgen::date_time_ymd(2026, 1, 1));
        let leaf = expired.leaf(&["a.example.jp"], |_| {});
        check(
            &leaf,
            &[&expired.cert],
            &[&root.cert],
            &opts(),
            Err("Expired"),
        );
        // The same CA key and name, re-issued with a longer validity.
        let mut params = ca_params("ICA");
        params.not_after = rcgen::date_time_ymd(2030, 1, 1);
        let issuer = Issuer::from_params(&root.params, &root.key);
        let fresh = Cert::from_der(params.signed_by(&expired.key, &issuer).unwrap().der()).unwrap();
        check(
            &leaf,
            &[&expired.cert, &fresh],
            &[&root.cert],
            &opts(),
            Ok(3),
        );
    }
}

mod basic_constraints_and_key_usage {
    use super::*;

    #[test]
    fn rejects_intermediate_without_the_ca_bit() {
        let root = Ca::root("Root");
        let ica = root.ca("ICA", |p| p.is_ca = IsCa::ExplicitNoCa);
        let leaf = ica.leaf(&["a.example.jp"], |_| {});
        check(&leaf, &[&ica.cert], &[&root.cert], &opts(), Err("NotCa"));
    }

    #[test]
    fn path_len_zero_allows_a_leaf_but_not_another_ca() {
        let root = Ca::root("Root");
        let ica = root.ca("ICA", |p| {
            p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0))
        });
        let leaf = ica.leaf(&["a.example.jp"], |_| {});
        check(&leaf, &[&ica.cert], &[&root.cert], &opts(), Ok(3));
        let sub = ica.ca("Sub", |_| {});
        let leaf = sub.leaf(&["a.example.jp"], |_| {});
        check(
            &leaf,
            &[&ica.cert, &sub.cert],
            &[&root.cert],
            &opts(),
            Err("PathLenExceeded"),
        );
    }

    #[test]
    fn path_len_violation_names_the_ca_whose_constraint_was_exceeded() {
        let root = Ca::root("Root");
        let ica = root.ca("ICA", |p| {
            p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0))
        });
        let sub = ica.ca("Sub", |_| {});
        let leaf = sub.leaf(&["a.example.jp"], |_| {});
        let pool = [ica.cert.clone(), sub.cert.clone()];
        let anchors = std::slice::from_ref(&root.cert);
        let err = verify_chain(&leaf, &pool, anchors, &CrlSet::new(), &opts())
            .expect_err("a CA under pathLenConstraint 0 must not validate");
        match err.error() {
            kakehashi_pki::error::Error::PathLenExceeded {
                path_len,
                cert,
                exceeded_by,
            } => {
                assert_eq!(*path_len, 0);
                assert!(cert.contains("CN=ICA"), "constraint set by {cert}");
                assert!(exceeded_by.contains("CN=Sub"), "exceeded by {exceeded_by}");
            }
            other => panic!("expected PathLenExceeded, got {other}"),
        }
    }

    #[test]
    fn rejects_ca_whose_key_usage_lacks_key_cert_sign() {
        let root = Ca::root("Root");
        let ica = root.ca("ICA", |p| p.key_usages = vec![KeyUsagePurpose::CrlSign]);
        let leaf = ica.leaf(&["a.example.jp"], |_| {});
        check(&leaf, &[&ica.cert], &[&root.cert], &opts(), Err("KeyUsage"));
    }

    #[test]
    fn rejects_unknown_critical_extension_but_ignores_a_non_critical_one() {
        let root = Ca::root("Root");
        let oid = [1, 3, 6, 1, 4, 1, 55738, 666, 1];
        let leaf = root.leaf(&["a.example.jp"], |p| {
            p.custom_extensions = vec![CustomExtension::from_oid_content(&oid, vec![5, 0])];
        });
        check(&leaf, &[], &[&root.cert], &opts(), Ok(2));
        let leaf = root.leaf(&["a.example.jp"], |p| {
            let mut ext = CustomExtension::from_oid_content(&oid, vec![5, 0]);
            ext.set_criticality(true);
            p.custom_extensions = vec![ext];
        });
        check(
            &leaf,
            &[],
            &[&root.cert],
            &opts(),
            Err("UnknownCriticalExtension"),
        );
    }
}

mod name_constraints {
    use super::*;
    use rcgen::{CidrSubnet, GeneralSubtree, NameConstraints};

    fn constrained(permitted: Vec<GeneralSubtree>, excluded: Vec<GeneralSubtree>) -> (Ca, Ca) {
        let root = Ca::root("Root");
        let ica = root.ca("ICA", |p| {
            p.name_constraints = Some(NameConstraints {
                permitted_subtrees: permitted,
                excluded_subtrees: excluded,
            });
        });
        (root, ica)
    }

    #[test]
    fn permitted_dns_subtree_admits_subdomains_and_rejects_others() {
        let (root, ica) = constrained(vec![GeneralSubtree::DnsName("example.jp".into())], vec![]);
        let good = ica.leaf(&["node.example.jp"], |_| {});
        check(&good, &[&ica.cert], &[&root.cert], &opts(), Ok(3));
        let bad = ica.leaf(&["node.example.sg"], |_| {});
        check(
            &bad,
            &[&ica.cert],
            &[&root.cert],
            &opts(),
            Err("NameConstraintViolation"),
        );
    }

    #[test]
    fn excluded_ip_subnet_rejects_an_address_inside_it() {
        let subnet = CidrSubnet::V4([10, 0, 0, 0], [255, 0, 0, 0]);
        let (root, ica) = constrained(vec![], vec![GeneralSubtree::IpAddress(subnet)]);
        let outside = ica.leaf(&["192.0.2.7"], |_| {});
        check(&outside, &[&ica.cert], &[&root.cert], &opts(), Ok(3));
        let inside = ica.leaf(&["10.1.2.3"], |_| {});
        check(
            &inside,
            &[&ica.cert],
            &[&root.cert],
            &opts(),
            Err("NameConstraintViolation"),
        );
    }

    #[test]
    fn directory_name_constraint_applies_to_the_subject() {
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(DnType::CountryName, "JP");
        let (root, ica) = constrained(vec![GeneralSubtree::DirectoryName(dn)], vec![]);
        let jp = ica.leaf(&["a.example.jp"], |p| {
            p.distinguished_name = rcgen::DistinguishedName::new();
            p.distinguished_name.push(DnType::CountryName, "JP");
            p.distinguished_name.push(DnType::CommonName, "bank");
        });
        check(&jp, &[&ica.cert], &[&root.cert], &opts(), Ok(3));
        let sg = ica.leaf(&["a.example.jp"], |p| {
            p.distinguished_name = rcgen::DistinguishedName::new();
            p.distinguished_name.push(DnType::CountryName, "SG");
        });
        check(
            &sg,
            &[&ica.cert],
            &[&root.cert],
            &opts(),
            Err("NameConstraintViolation"),
        );
    }
}

mod purpose_and_peer_name {
    use super::*;

    #[test]
    fn extended_key_usage_must_list_a_required_purpose() {
        let root = Ca::root("Root");
        let leaf = root.leaf(&["a.example.jp"], |_| {});
        let mut o = opts();
        o.required_ekus = vec![kakehashi_pki::purpose::EKU_SERVER_AUTH.to_owned()];
        check(&leaf, &[], &[&root.cert], &o, Ok(2));
        o.required_ekus = vec![kakehashi_pki::purpose::EKU_PAYMENT_SIGNING.to_owned()];
        check(&leaf, &[], &[&root.cert], &o, Err("EkuMismatch"));
    }

    #[test]
    fn web_pki_server_matches_exact_and_wildcard_names_only() {
        let root = Ca::root("Root");
        let leaf = root.leaf(&["*.example.jp", "127.0.0.1"], |p| {
            p.distinguished_name = rcgen::DistinguishedName::new();
            p.distinguished_name.push(DnType::OrganizationName, "Bank");
        });
        check(
            &leaf,
            &[],
            &[&root.cert],
            &server_opts("node.example.jp"),
            Ok(2),
        );
        check(&leaf, &[], &[&root.cert], &server_opts("127.0.0.1"), Ok(2));
        check(
            &leaf,
            &[],
            &[&root.cert],
            &server_opts("example.jp"),
            Err("PeerNameMismatch"),
        );
        check(
            &leaf,
            &[],
            &[&root.cert],
            &server_opts("a.b.example.jp"),
            Err("PeerNameMismatch"),
        );
    }

    #[test]
    fn web_pki_rejects_a_common_name_that_is_not_a_san() {
        let root = Ca::root("Root");
        let leaf = root.leaf(&["a.example.jp"], |p| {
            p.distinguished_name = rcgen::DistinguishedName::new();
            p.distinguished_name
                .push(DnType::CommonName, "b.example.jp");
        });
        check(
            &leaf,
            &[],
            &[&root.cert],
            &server_opts("a.example.jp"),
            Err("Profile"),
        );
        check(&leaf, &[], &[&root.cert], &opts(), Ok(2));
    }
}

mod path_building {
    use super::*;

    #[test]
    fn chain_depth_bound_rejects_a_long_chain() {
        let root = Ca::root("Root");
        let a = root.ca("A", |_| {});
        let b = a.ca("B", |_| {});
        let leaf = b.leaf(&["a.example.jp"], |_| {});
        let mut o = opts();
        check(&leaf, &[&a.cert, &b.cert], &[&root.cert], &o, Ok(4));
        o.intermediates_max = Some(1);
        check(
            &leaf,
            &[&a.cert, &b.cert],
            &[&root.cert],
            &o,
            Err("ChainTooDeep"),
        );
    }

    #[test]
    fn cross_signed_cycle_without_an_anchor_terminates() {
        let root = Ca::root("Root");
        let x = Ca::root("X");
        let y = Ca::root("Y");
        // X and Y certify each other; neither chains to Root.
        let x_by_y = y.certify(&x);
        let y_by_x = x.certify(&y);
        let leaf = x.leaf(&["a.example.jp"], |_| {});
        check(
            &leaf,
            &[&x_by_y, &y_by_x],
            &[&root.cert],
            &opts(),
            Err("UnknownIssuer"),
        );
    }

    #[test]
    fn many_same_name_intermediates_exhaust_the_signature_budget() {
        let root = Ca::root("Root");
        let decoys: Vec<Ca> = (0..120).map(|_| Ca::root("ICA")).collect();
        let leaf = decoys[0].leaf(&["a.example.jp"], |_| {});
        // The leaf's real issuer is absent; every decoy has the right name and a wrong key
        // (except the first, which has no path to Root), so the search must give up.
        let pool: Vec<&Cert> = decoys.iter().map(|d| &d.cert).collect();
        check(
            &leaf,
            &pool[1..],
            &[&root.cert],
            &opts(),
            Err("BudgetExceeded"),
        );
    }
}

/// RFC 5280 §4.2.1.1: the keyIdentifier of the authorityKeyIdentifier is in every certificate
/// but a self-signed one, under both profiles, trust anchors included.
mod authority_key_identifier {
    use super::*;

    fn without_aki(p: &mut CertificateParams) {
        p.use_authority_key_identifier_extension = false;
    }

    /// The rule and the explanation a refusal for a missing key identifier carries.
    #[track_caller]
    fn assert_refused_for_aki(
        leaf: &Cert,
        pool: &[Cert],
        anchors: &[Cert],
        opts: &ValidationOptions,
        subject: &str,
    ) {
        let err = verify_chain(leaf, pool, anchors, &CrlSet::new(), opts).unwrap_err();
        assert!(
            format!("{:?}", err.error()).starts_with("MissingAuthorityKeyId"),
            "{err}"
        );
        assert_eq!(err.error().rule(), "RFC 5280 §4.2.1.1");
        assert!(err.to_string().contains("RFC 5280 §4.2.1.1"), "{err}");
        assert_eq!(err.cert().map(|c| c.subject.as_str()), Some(subject));
        let failed = err.checks().last().unwrap();
        assert_eq!(
            (failed.name.as_str(), failed.outcome),
            ("authority-key-identifier", kakehashi_pki::Outcome::Fail)
        );
    }

    #[test]
    fn a_cross_signed_ca_without_aki_is_refused_under_both_profiles() {
        // Other Root cross-signs Root's key and name; the cross-certificate lacks the AKI.
        let other = Ca::root("Other Root");
        let root = Ca::root("Root");
        let cross = other.certify(&root);
        assert!(cross.authority_key_id().is_none());
        let leaf = root.leaf(&["a.example.jp"], |p| {
            p.distinguished_name = rcgen::DistinguishedName::new()
        });
        for opts in [opts(), server_opts("a.example.jp")] {
            assert_refused_for_aki(
                &leaf,
                std::slice::from_ref(&cross),
                std::slice::from_ref(&other.cert),
                &opts,
                "CN=Root",
            );
            // The same cross-certificate with the key identifier validates.
            let mut with_aki = root.params.clone();
            with_aki.use_authority_key_identifier_extension = true;
            let issuer = Issuer::from_params(&other.params, &other.key);
            let cross_aki =
                Cert::from_der(with_aki.signed_by(&root.key, &issuer).unwrap().der()).unwrap();
            check(&leaf, &[&cross_aki], &[&other.cert], &opts, Ok(3));
        }
    }

    #[test]
    fn a_cross_signed_certificate_as_trust_anchor_is_not_exempt() {
        // x509-limbo's rfc5280::aki::cross-signed-root-missing-aki: the anchor is a CA
        // certificate issued by another root, not a self-signed one, so it needs the AKI.
        let other = Ca::root("Other Root");
        let root = Ca::root("Root");
        let cross = other.certify(&root);
        let leaf = root.leaf(&["a.example.jp"], |p| {
            p.distinguished_name = rcgen::DistinguishedName::new()
        });
        for opts in [opts(), server_opts("a.example.jp")] {
            assert_refused_for_aki(&leaf, &[], std::slice::from_ref(&cross), &opts, "CN=Root");
            // Root's own self-signed certificate, without AKI either, is exempt.
            assert!(root.cert.authority_key_id().is_none());
            check(&leaf, &[], &[&root.cert], &opts, Ok(2));
        }
    }

    #[test]
    fn an_intermediate_or_leaf_without_aki_is_refused_under_both_profiles() {
        let root = Ca::root("Root");
        let ica = root.ca("ICA", without_aki);
        let leaf = ica.leaf(&["a.example.jp"], |p| {
            p.distinguished_name = rcgen::DistinguishedName::new()
        });
        let bare_leaf = root.leaf(&["a.example.jp"], |p| {
            p.distinguished_name = rcgen::DistinguishedName::new();
            without_aki(p);
        });
        for opts in [opts(), server_opts("a.example.jp")] {
            assert_refused_for_aki(
                &leaf,
                std::slice::from_ref(&ica.cert),
                std::slice::from_ref(&root.cert),
                &opts,
                "CN=ICA",
            );
            let err = verify_chain(
                &bare_leaf,
                &[],
                std::slice::from_ref(&root.cert),
                &CrlSet::new(),
                &opts,
            )
            .unwrap_err();
            assert!(
                format!("{:?}", err.error()).starts_with("MissingAuthorityKeyId"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_self_issued_certificate_by_another_key_is_not_exempt() {
        // Key rollover: "Root" with a new key, certified by the old key under the same name.
        // It is self-issued but not self-signed.
        let old = Ca::root("Root");
        let new = Ca::root("Root");
        let rollover = old.certify(&new);
        assert!(rollover.is_self_issued() && !rollover.is_self_signed());
        assert!(new.cert.is_self_signed());
        let leaf = new.leaf(&["a.example.jp"], |p| {
            p.distinguished_name = rcgen::DistinguishedName::new()
        });
        assert_refused_for_aki(
            &leaf,
            std::slice::from_ref(&rollover),
            std::slice::from_ref(&old.cert),
            &opts(),
            "CN=Root",
        );
    }
}

mod web_pki_profile {
    use super::*;

    #[test]
    fn root_with_extended_key_usage_is_refused_only_under_the_web_pki_profile() {
        let root = Ca::root_with("Root", &rcgen::PKCS_ED25519, |p| {
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        });
        let leaf = root.leaf(&["a.example.jp"], |p| {
            p.distinguished_name = rcgen::DistinguishedName::new()
        });
        check(&leaf, &[], &[&root.cert], &opts(), Ok(2));
        check(
            &leaf,
            &[],
            &[&root.cert],
            &server_opts("a.example.jp"),
            Err("Profile"),
        );
    }

    #[test]
    fn end_entity_with_any_extended_key_usage_is_refused_only_under_the_web_pki_profile() {
        // CABF BR §7.1.2.7.10: anyExtendedKeyUsage MUST NOT be present in a subscriber
        // certificate, alone or next to serverAuth. RFC 5280 §4.2.1.12 allows it.
        let root = Ca::root("Root");
        for ekus in [
            vec![ExtendedKeyUsagePurpose::Any],
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::Any,
            ],
        ] {
            let leaf = root.leaf(&["a.example.jp"], |p| {
                p.distinguished_name = rcgen::DistinguishedName::new();
                p.extended_key_usages = ekus.clone();
            });
            let mut rfc5280 = opts();
            rfc5280.required_ekus = vec![kakehashi_pki::purpose::EKU_SERVER_AUTH.to_owned()];
            check(&leaf, &[], &[&root.cert], &rfc5280, Ok(2));
            let web = server_opts("a.example.jp");
            check(&leaf, &[], &[&root.cert], &web, Err("Profile"));
            let err = verify_chain(
                &leaf,
                &[],
                std::slice::from_ref(&root.cert),
                &CrlSet::new(),
                &web,
            )
            .unwrap_err();
            assert_eq!(err.error().rule(), "CABF BR §7.1.2.7.10", "{err}");
            assert!(err.to_string().contains("anyExtendedKeyUsage"), "{err}");
        }
        // With no purpose asked for, the profile still refuses it.
        let any_only = root.leaf(&["a.example.jp"], |p| {
            p.distinguished_name = rcgen::DistinguishedName::new();
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::Any];
        });
        let mut web = server_opts("a.example.jp");
        web.required_ekus.clear();
        check(&any_only, &[], &[&root.cert], &web, Err("Profile"));
    }

    #[test]
    fn expired_trust_anchor_rejects_the_chain() {
        let root = Ca::root_with("Root", &rcgen::PKCS_ED25519, |p| {
            p.not_after = rcgen::date_time_ymd(2026, 1, 1);
        });
        let leaf = root.leaf(&["a.example.jp"], |_| {});
        check(&leaf, &[], &[&root.cert], &opts(), Err("Expired"));
    }

    #[test]
    fn wildcard_san_under_a_narrower_permitted_subtree_is_refused() {
        use rcgen::{GeneralSubtree, NameConstraints};
        let root = Ca::root("Root");
        let ica = root.ca("ICA", |p| {
            p.name_constraints = Some(NameConstraints {
                permitted_subtrees: vec![GeneralSubtree::DnsName("node.example.jp".into())],
                excluded_subtrees: vec![],
            });
        });
        let leaf = ica.leaf(&["*.example.jp"], |p| {
            p.distinguished_name = rcgen::DistinguishedName::new()
        });
        check(
            &leaf,
            &[&ica.cert],
            &[&root.cert],
            &server_opts("node.example.jp"),
            Err("NameConstraintViolation"),
        );
        let exact = ica.leaf(&["node.example.jp"], |p| {
            p.distinguished_name = rcgen::DistinguishedName::new()
        });
        check(
            &exact,
            &[&ica.cert],
            &[&root.cert],
            &server_opts("node.example.jp"),
            Ok(3),
        );
    }
}
