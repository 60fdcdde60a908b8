//! The engine's randomness: the few bytes that make quote ids and funding transfer ids
//! unguessable and unique. Read only through [`Entropy`], handed to the engine at construction
//! like its clock, so that the deterministic simulator can replay a seed exactly; production
//! passes [`SystemEntropy`], the operating system's source.

use std::fmt;

/// The randomness source failed (production: the operating system refused).
#[derive(Debug, thiserror::Error)]
#[error("the random source failed")]
pub struct EntropyError;

/// Where the engine draws random bytes.
pub trait Entropy: Send + Sync + fmt::Debug {
    /// Fills `bytes`.
    fn fill(&self, bytes: &mut [u8]) -> Result<(), EntropyError>;
}

/// The operating system's random source (ring's `SystemRandom`).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemEntropy;

impl Entropy for SystemEntropy {
    fn fill(&self, bytes: &mut [u8]) -> Result<(), EntropyError> {
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), bytes)
            .map_err(|_| EntropyError)
    }
}
