//! A 256-bit unsigned sum, so totals over many `u128` balances never overflow: Σ of up to
//! 2^128 values below 2^128 fits. Used for the per-ledger debit/credit totals.

use std::fmt;

/// `hi * 2^128 + lo`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Sum256 {
    hi: u128,
    lo: u128,
}

impl Sum256 {
    /// Adds `value`, carrying into the high half.
    pub(crate) fn add(&mut self, value: u128) {
        let (lo, carry) = self.lo.overflowing_add(value);
        self.lo = lo;
        // The high half counts carries, one per addition at most; it cannot reach u128::MAX
        // before 2^128 additions, which no ledger performs.
        self.hi = self.hi.saturating_add(u128::from(carry));
    }

    /// The sum of `values`.
    pub(crate) fn of(values: &[u128]) -> Self {
        let mut sum = Self::default();
        values.iter().for_each(|value| sum.add(*value));
        sum
    }
}

impl fmt::Display for Sum256 {
    /// Decimal digits (long division by 10 over the two halves).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.hi == 0 {
            return write!(f, "{}", self.lo);
        }
        let mut digits = Vec::new();
        let (mut hi, mut lo) = (self.hi, self.lo);
        while hi != 0 || lo != 0 {
            // Divide the 256-bit value by 10 using 64-bit limbs so no step overflows.
            let limbs = [(hi >> 64) as u64, hi as u64, (lo >> 64) as u64, lo as u64];
            let mut quotient = [0u64; 4];
            let mut remainder: u128 = 0;
            for (index, limb) in limbs.iter().enumerate() {
                let current = (remainder << 64) | u128::from(*limb);
                quotient[index] = (current / 10) as u64;
                remainder = current % 10;
            }
            digits.push(b'0' + remainder as u8);
            hi = (u128::from(quotient[0]) << 64) | u128::from(quotient[1]);
            lo = (u128::from(quotient[2]) << 64) | u128::from(quotient[3]);
        }
        digits.reverse();
        f.write_str(&String::from_utf8_lossy(&digits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carries_into_the_high_half_instead_of_wrapping() {
        let sum = Sum256::of(&[u128::MAX, 1]);
        assert_eq!(sum, Sum256 { hi: 1, lo: 0 });
        assert!(sum > Sum256::of(&[u128::MAX]));
        assert_eq!(Sum256::of(&[2, 3]), Sum256 { hi: 0, lo: 5 });
    }

    #[test]
    fn displays_decimal_beyond_u128() {
        assert_eq!(Sum256::of(&[42]).to_string(), "42");
        // 2^128 = 340282366920938463463374607431768211456.
        assert_eq!(
            Sum256::of(&[u128::MAX, 1]).to_string(),
            "340282366920938463463374607431768211456"
        );
    }
}
