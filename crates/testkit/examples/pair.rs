//! A JP and an SG node started with one call, a payment each way, the repository's sample
//! transaction file replayed, and the pair audit at the end:
//!
//! ```sh
//! cargo run -p kakehashi-testkit --example pair
//! ```

use kakehashi_testkit::{Outcome, TestPair, Transfer, sample_file};

#[tokio::main]
async fn main() -> Result<(), kakehashi_testkit::Error> {
    let pair = TestPair::start().await?;
    for j in pair.jurisdictions() {
        println!("{j} node at {}", pair.url(j).unwrap_or_default());
    }
    let jp = pair.bank("KKHAJPJ0")?;
    let sg = pair.bank("KKHASGS0")?;
    for (bank, transfer) in [
        (jp, Transfer::new(1001, "KKHASGS0", 2001, "25000")),
        (sg, Transfer::new(2001, "KKHAJPJ0", 1001, "150.00")),
    ] {
        let paid = bank.pay(&transfer).await?;
        match &paid.outcome {
            Outcome::Settled { report, .. } => println!(
                "{} paid {} ({}): ACSC, credited {}",
                bank.bic(),
                transfer.amount,
                paid.uetr,
                report
                    .credited_amount
                    .as_ref()
                    .map(|a| format!("{} {}", a.value, a.currency))
                    .unwrap_or_default()
            ),
            other => println!(
                "{} paid {}: {}",
                bank.bic(),
                transfer.amount,
                other.status()
            ),
        }
    }
    let replay = pair.replay_file(sample_file()).await?;
    print!("{replay}");
    println!(
        "{} line(s), all as expected: {}",
        replay.results.len(),
        replay.all_as_expected()
    );
    let audit = pair.shutdown().await?;
    for direction in &audit.directions {
        println!(
            "{}→{}: {} settled, {} rejected, {} in doubt",
            direction.sender,
            direction.receiver,
            direction.settled,
            direction.rejected,
            direction.in_doubt
        );
    }
    println!("the books agree");
    Ok(())
}
