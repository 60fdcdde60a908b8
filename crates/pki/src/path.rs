//! Path building: candidate paths from the leaf to a trust anchor over a pool of intermediates.
//!
//! A depth-first search with backtracking. The issuers of a certificate are the anchors and
//! intermediates whose subject matches its issuer name (RFC 5280 §7.1 comparison), anchors
//! first (the shortest path wins), each group ordered so that an authorityKeyIdentifier /
//! subjectKeyIdentifier match comes first (RFC 5280 §4.2.1.1 says the identifiers exist "to
//! facilitate certification path construction"). Each edge's signature is verified before
//! the search goes further, no certificate appears twice on a path, and the whole search runs
//! under a [`Budget`]. Every complete candidate is handed to a callback that runs RFC 5280
//! §6.1 over it; the first that passes wins, otherwise the most specific error is returned.

use std::collections::HashMap;

use crate::cert::Cert;
use crate::error::Error;
use crate::signature::verify_cert_signed_by;
use crate::validate::PathError;

/// Longest path the builder constructs, counting the leaf and the anchor: real web and
/// enterprise chains have at most three or four intermediates, and the bound keeps the
/// depth-first search shallow on hostile pools (RFC 5280 §6.1 leaves the maximum to the
/// relying party).
pub const CHAIN_DEPTH_MAX: usize = 8;

/// Most signature verifications one search may perform. An honest chain needs one per
/// certificate; pools crafted so that many certificates share a name (a path-building
/// denial of service) stop here. rustls-webpki uses the same figure.
pub const SIGNATURE_CHECKS_MAX: usize = 100;

/// Most complete candidate paths one search may validate before giving up: each costs a full
/// RFC 5280 §6.1 pass, and real pools offer a handful.
pub const PATH_ATTEMPTS_MAX: usize = 64;

/// The work one path search may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Signature verifications.
    pub signature_checks_max: usize,
    /// Complete candidate paths validated.
    pub path_attempts_max: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            signature_checks_max: SIGNATURE_CHECKS_MAX,
            path_attempts_max: PATH_ATTEMPTS_MAX,
        }
    }
}

/// A complete candidate path.
#[derive(Debug)]
pub(crate) struct Candidate<'a> {
    /// Leaf first, trust anchor last.
    pub(crate) certs: Vec<&'a Cert>,
    /// The anchor's index in the caller's `anchors` slice.
    pub(crate) anchor_index: usize,
    /// Per edge (index `i` = the signature on `certs[i]`): `None` when it verified, or the
    /// refused-algorithm error when the verifier would not check it. Such a path can fail for
    /// other reasons but can never be accepted.
    pub(crate) refused: Vec<Option<Error>>,
}

/// Where a certificate in the search comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Node {
    Leaf,
    Intermediate(usize),
    Anchor(usize),
}

struct Search<'a, F> {
    leaf: &'a Cert,
    intermediates: &'a [Cert],
    anchors: &'a [Cert],
    depth_max: usize,
    budget: Budget,
    signature_checks: usize,
    path_attempts: usize,
    signature_cache: HashMap<(Node, Node), Result<(), Error>>,
    best: Option<PathError>,
    validate: F,
}

/// Searches for a path from `leaf` to one of `anchors` and returns what `validate` returns
/// for the first candidate it accepts, or the most specific error.
pub(crate) fn build<'a, T>(
    leaf: &'a Cert,
    intermediates: &'a [Cert],
    anchors: &'a [Cert],
    depth_max: usize,
    budget: Budget,
    validate: impl FnMut(&Candidate<'a>) -> Result<T, PathError>,
) -> Result<T, PathError> {
    let mut search = Search {
        leaf,
        intermediates,
        anchors,
        depth_max: depth_max.clamp(2, CHAIN_DEPTH_MAX),
        budget,
        signature_checks: 0,
        path_attempts: 0,
        signature_cache: HashMap::new(),
        best: None,
        validate,
    };
    let mut path = vec![Node::Leaf];
    let mut refused = Vec::new();
    match search.extend(&mut path, &mut refused) {
        Ok(Some(found)) => Ok(found),
        Ok(None) => Err(search.best.unwrap_or_else(|| {
            PathError::new(
                Error::UnknownIssuer {
                    issuer: leaf.issuer_display().to_owned(),
                },
                Some(leaf.cert_ref(0)),
                vec![leaf.cert_ref(0)],
                Vec::new(),
            )
        })),
        Err(fatal) => Err(fatal),
    }
}

impl<'a, T, F> Search<'a, F>
where
    F: FnMut(&Candidate<'a>) -> Result<T, PathError>,
{
    fn cert(&self, node: Node) -> &'a Cert {
        match node {
            Node::Leaf => self.leaf,
            Node::Intermediate(i) => &self.intermediates[i],
            Node::Anchor(i) => &self.anchors[i],
        }
    }

    fn refs(&self, path: &[Node]) -> Vec<crate::verdict::CertRef> {
        path.iter()
            .enumerate()
            .map(|(pos, n)| self.cert(*n).cert_ref(pos))
            .collect()
    }

    fn record(&mut self, err: PathError) {
        let better = self
            .best
            .as_ref()
            .is_none_or(|best| err.error().rank() > best.error().rank());
        if better {
            self.best = Some(err);
        }
    }

    /// Extends `path` (whose last certificate needs an issuer). `Ok(Some)` is an accepted
    /// path, `Ok(None)` means every branch failed (errors recorded), `Err` is fatal (budget).
    fn extend(
        &mut self,
        path: &mut Vec<Node>,
        refused: &mut Vec<Option<Error>>,
    ) -> Result<Option<T>, PathError> {
        let current_node = *path.last().unwrap_or(&Node::Leaf);
        let current = self.cert(current_node);
        let position = path.len() - 1;
        let candidates = self.issuer_candidates(current, path);
        if candidates.is_empty() {
            self.record(PathError::new(
                Error::UnknownIssuer {
                    issuer: current.issuer_display().to_owned(),
                },
                Some(current.cert_ref(position)),
                self.refs(path),
                Vec::new(),
            ));
            return Ok(None);
        }
        if path.len() + 1 > self.depth_max {
            self.record(PathError::new(
                Error::ChainTooDeep {
                    depth_max: self.depth_max,
                },
                Some(current.cert_ref(position)),
                self.refs(path),
                Vec::new(),
            ));
            return Ok(None);
        }
        for candidate in candidates {
            let edge = self.check_signature(current_node, candidate, path)?;
            let refusal = match edge {
                Ok(()) => None,
                Err(err) if err.is_unsupported_algorithm() => Some(err),
                Err(err) => {
                    let mut tried = path.clone();
                    tried.push(candidate);
                    self.record(PathError::new(
                        err,
                        Some(current.cert_ref(position)),
                        self.refs(&tried),
                        Vec::new(),
                    ));
                    continue;
                }
            };
            path.push(candidate);
            refused.push(refusal);
            let outcome = match candidate {
                Node::Anchor(anchor_index) => self.try_complete(path, refused, anchor_index),
                _ => self.extend(path, refused),
            };
            path.pop();
            refused.pop();
            match outcome {
                Ok(None) => {}
                done => return done,
            }
        }
        Ok(None)
    }

    fn try_complete(
        &mut self,
        path: &[Node],
        refused: &[Option<Error>],
        anchor_index: usize,
    ) -> Result<Option<T>, PathError> {
        self.path_attempts += 1;
        if self.path_attempts > self.budget.path_attempts_max {
            return Err(self.budget_error("candidate paths", self.budget.path_attempts_max, path));
        }
        let candidate = Candidate {
            certs: path.iter().map(|n| self.cert(*n)).collect(),
            anchor_index,
            refused: refused.to_vec(),
        };
        match (self.validate)(&candidate) {
            Ok(found) => Ok(Some(found)),
            Err(err) => {
                self.record(err);
                Ok(None)
            }
        }
    }

    fn budget_error(&self, what: &'static str, limit: usize, path: &[Node]) -> PathError {
        PathError::new(
            Error::BudgetExceeded { what, limit },
            Some(self.leaf.cert_ref(0)),
            self.refs(path),
            Vec::new(),
        )
    }

    /// Verifies the signature on `child` with `issuer`'s key, once per pair.
    fn check_signature(
        &mut self,
        child: Node,
        issuer: Node,
        path: &[Node],
    ) -> Result<Result<(), Error>, PathError> {
        if let Some(cached) = self.signature_cache.get(&(child, issuer)) {
            return Ok(cached.clone());
        }
        self.signature_checks += 1;
        if self.signature_checks > self.budget.signature_checks_max {
            return Err(self.budget_error(
                "signature checks",
                self.budget.signature_checks_max,
                path,
            ));
        }
        let result =
            verify_cert_signed_by(self.cert(child), self.cert(issuer)).map_err(Error::from);
        self.signature_cache.insert((child, issuer), result.clone());
        Ok(result)
    }

    /// Anchors, then intermediates, whose subject matches `cert`'s issuer and that are not
    /// already on the path; key-identifier matches first within each group.
    fn issuer_candidates(&self, cert: &Cert, path: &[Node]) -> Vec<Node> {
        let on_path = |c: &Cert| path.iter().any(|n| self.cert(*n).der() == c.der());
        let wanted_key = cert.authority_key_id().and_then(|a| a.key_id.as_deref());
        let order = |c: &Cert| match (wanted_key, c.subject_key_id()) {
            (Some(w), Some(s)) if w == s => 0,
            (None, _) | (_, None) => 1,
            _ => 2,
        };
        let mut anchors: Vec<(u8, Node)> = self
            .anchors
            .iter()
            .enumerate()
            .filter(|(_, a)| a.subject() == cert.issuer() && !on_path(a))
            .map(|(i, a)| (order(a), Node::Anchor(i)))
            .collect();
        let mut intermediates: Vec<(u8, Node)> = self
            .intermediates
            .iter()
            .enumerate()
            .filter(|(_, c)| c.subject() == cert.issuer() && !on_path(c))
            .filter(|(_, c)| !self.anchors.iter().any(|a| a.der() == c.der()))
            .map(|(i, c)| (order(c), Node::Intermediate(i)))
            .collect();
        anchors.sort_by_key(|(o, _)| *o);
        intermediates.sort_by_key(|(o, _)| *o);
        anchors
            .into_iter()
            .chain(intermediates)
            .map(|(_, n)| n)
            .collect()
    }
}

#[cfg(test)]
mod tests;
