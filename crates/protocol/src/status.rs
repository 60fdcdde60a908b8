//! The pacs.002 transaction status of a payment, by name: one spelling for the node's metrics,
//! the load generator's counts and every table the command line prints.

use kakehashi_proto::pb;

/// The ISO 20022 `ExternalPaymentTransactionStatus1Code` of `status`: `ACSC` (settled),
/// `RJCT` (rejected), `PDNG` (in doubt); `UNSPECIFIED` for a report that carries none.
pub fn status_name(status: pb::TransactionStatus) -> &'static str {
    match status {
        pb::TransactionStatus::Acsc => "ACSC",
        pb::TransactionStatus::Rjct => "RJCT",
        pb::TransactionStatus::Pdng => "PDNG",
        pb::TransactionStatus::Unspecified => "UNSPECIFIED",
    }
}

/// A status name and its reason code as tables and counts show them: `ACSC`, `RJCT AM04`.
pub fn with_reason(status: &str, reason: &str) -> String {
    if reason.is_empty() {
        status.to_owned()
    } else {
        format!("{status} {reason}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_pacs002_codes() {
        assert_eq!(status_name(pb::TransactionStatus::Acsc), "ACSC");
        assert_eq!(status_name(pb::TransactionStatus::Rjct), "RJCT");
        assert_eq!(status_name(pb::TransactionStatus::Pdng), "PDNG");
        assert_eq!(
            status_name(pb::TransactionStatus::Unspecified),
            "UNSPECIFIED"
        );
    }

    #[test]
    fn a_reason_follows_its_status() {
        let acsc = status_name(pb::TransactionStatus::Acsc);
        let rjct = status_name(pb::TransactionStatus::Rjct);
        assert_eq!(with_reason(acsc, ""), "ACSC");
        assert_eq!(with_reason(rjct, "AM04"), "RJCT AM04");
    }
}
