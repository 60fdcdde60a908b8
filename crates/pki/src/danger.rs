//! Operations that switch off a safeguard of the verifier, named as such so that every use is
//! visible in review and in a search for `danger::` (as rustls keeps its dangerous options in a
//! `danger` module).
//!
//! Nothing here is needed by a node in service: the tools use it for experiments with an
//! agreement that is not yet signed by every party, and tests use it to show what the
//! safeguard prevents.

use crate::mra::Mra;

/// Lets [`Mra::recognize`] proceed although a party's signature over the agreement is missing
/// or invalid (MRA §signatures): for experiments with a draft agreement only. The verdict
/// records the signature check as not applicable, with a warning, so the exception stays
/// visible in every explanation; [`Mra::unsigned_allowed`] reports the setting, and the
/// recognition caches key on it.
pub fn allow_unsigned_agreement(mra: &mut Mra, allow: bool) {
    mra.allow_unsigned = allow;
}
