//! The crypto ceiling of `kakehashi bench` (issue 14, item 1): the signature and hash
//! operations one settled payment needs on the path the bench exercises ([`PAYMENT_PATH`]),
//! timed on this machine in the same process right after the run, and what they allow at most
//! on the cores the run had: `cores / crypto time per payment` payments per second. The run's
//! throughput over that is how close the relay comes to the speed of its signatures.
//!
//! The timings are measured (ed25519-dalek and sha2, the crates the relay signs and hashes
//! with, over messages of the sizes one payment of the run carried, on the timing thread's CPU
//! clock so that other work on the machine does not inflate them), not assumed. The ceiling
//! counts crypto alone: storage, TLS, HTTP/2 and scheduling come on top, so a run stays below
//! it.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use ed25519_dalek::{Signer as _, SigningKey};
use kakehashi_proto::pb;
use sha2::{Digest as _, Sha256};

/// Ed25519 operations timed per distinct row (a few milliseconds each on a laptop core).
pub const SIGNATURE_ITERATIONS: u32 = 200;

/// SHA-256 operations timed per distinct row.
pub const HASH_ITERATIONS: u32 = 2_000;

/// Bytes a ledger transfer id hashes (`kakehashi_protocol::transfer::transfer_id`): the
/// domain `kakehashi-transfer-v1\n` (22), a step such as `reserve` (7), `\n` and a 16-byte
/// UETR; the credit id's subject (`credit_transfer_id`) is 4 bytes longer. Every one is under
/// 56 bytes, i.e. one SHA-256 block, so one size stands for all three.
pub const TRANSFER_ID_INPUT: usize = 46;

/// The signed objects of a payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Object {
    /// The sender node's quote (GetQuote).
    Quote,
    /// The debtor bank's signed pacs.008 instruction.
    Instruction,
    /// The receiver node's receipt of the credit.
    Receipt,
}

impl Object {
    /// Its name in the printout and the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Quote => "quote",
            Self::Instruction => "instruction",
            Self::Receipt => "receipt",
        }
    }
}

/// What is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    /// An Ed25519 signature.
    Sign,
    /// An Ed25519 verification (`verify_strict`).
    Verify,
    /// A SHA-256 digest.
    Sha256,
}

impl Operation {
    /// Its name in the printout and the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sign => "sign",
            Self::Verify => "verify",
            Self::Sha256 => "sha256",
        }
    }
}

/// Which bytes an operation covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Input {
    /// The signing domain and the payload: what a signature covers.
    Signed(Object),
    /// The payload alone.
    Payload(Object),
    /// Each certificate of the object's signer chain (one digest per certificate, as
    /// `ParsedCerts::parse` keys its cache).
    Chain(Object),
    /// A ledger transfer id ([`TRANSFER_ID_INPUT`]).
    TransferId,
}

impl Input {
    /// Its name in the printout and the JSON.
    pub fn name(self) -> String {
        match self {
            Self::Signed(o) => o.name().to_owned(),
            Self::Payload(o) => format!("{} payload", o.name()),
            Self::Chain(o) => format!("{} signer chain", o.name()),
            Self::TransferId => "transfer id".to_owned(),
        }
    }
}

/// Where an operation happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Place {
    /// The bank, in the bench's client.
    Client,
    /// The sender node.
    Sender,
    /// The receiver node.
    Receiver,
}

impl Place {
    /// Its name in the printout and the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Sender => "sender",
            Self::Receiver => "receiver",
        }
    }
}

/// One kind of operation on the path, how often one payment does it, and the code that does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathOp {
    /// What.
    pub operation: Operation,
    /// Over which bytes.
    pub input: Input,
    /// Where.
    pub place: Place,
    /// Times per settled payment.
    pub count: u32,
    /// The function that does it.
    pub site: &'static str,
}

const fn op(
    operation: Operation,
    input: Input,
    place: Place,
    count: u32,
    site: &'static str,
) -> PathOp {
    PathOp {
        operation,
        input,
        place,
        count,
        site,
    }
}

use Input::{Chain, Payload, Signed, TransferId};
use Object::{Instruction, Quote, Receipt};
use Operation::{Sha256 as Hash, Sign, Verify};
use Place::{Client, Receiver, Sender};

/// The operations of one settled payment on the bench's path (GetQuote, then SubmitPayment or
/// one stream item; relay Prepare to the receiver; the receipt back), counted from the code:
///
/// - Signatures: the quote (`Engine::quote` → `quote::QuoteIssuer` → `signed::sign`), the
///   instruction (`bank::instruction`), the receipt (`Settler::settle`, in the credit's
///   commit). The sender node does not sign the Prepare: it relays the bank's signed
///   instruction as is (`Engine::forward`), and the link is authenticated by mutual TLS, not
///   by a signature.
/// - Verifications (each `signed::verify`, one `verify_strict`): the client's quote
///   (`Participant::quote` → `verify_quote_for`); at the sender the instruction
///   (`Engine::submit_decoded` → `instruction_signer`); at the receiver the instruction (one
///   signature of a batch in `Engine::authenticate_batch` → `signed::verify_batch`, or
///   `authenticate_inbound` on the unary Prepare) and the quote (`check_inbound`); at the
///   sender the receipt (`Engine::check_receipt`); at the client the receipt again, as a bank
///   does with every settled payment (`Participant::verify_receipt`, from the load
///   generator's `answered`). The sender does not verify its own quote's signature when the
///   instruction carries it byte for byte as held (`held_own_quote`), which every genuine
///   payment does.
/// - SHA-256: every verification digests each certificate of the signer chain
///   (`ParsedCerts::parse_shared`: the nodes' and the client's trust use the cache), and so
///   does the sender's recognition of its own quote's chain (`held_own_quote` →
///   `Trust::parse_shared`);
///   the quote's payload is digested when it is held (`IssuedQuotes::hold`), when the sender
///   compares it with the held one (`IssuedQuotes::own_terms`) and when it is checked and
///   taken (`held_quote` from `check_own_quote` and `take_quote`); the instruction's payload
///   at each `instruction::decode`, once per node (the service's `submit_one`, whose decoded
///   instruction the engine takes through `Engine::submit_decoded`; the receiver's `prepare`,
///   or `authenticate_batch` for a Prepares stream); three transfer ids (`reserve`, `post`,
///   the credit).
pub const PAYMENT_PATH: &[PathOp] = &[
    op(Sign, Signed(Quote), Sender, 1, "Engine::quote"),
    op(Sign, Signed(Instruction), Client, 1, "bank::instruction"),
    op(Sign, Signed(Receipt), Receiver, 1, "Settler::settle"),
    op(Verify, Signed(Quote), Client, 1, "Participant::quote"),
    op(
        Verify,
        Signed(Instruction),
        Sender,
        1,
        "Engine::submit_decoded",
    ),
    op(
        Verify,
        Signed(Instruction),
        Receiver,
        1,
        "Engine::authenticate_batch",
    ),
    op(Verify, Signed(Quote), Receiver, 1, "Engine::check_inbound"),
    op(Verify, Signed(Receipt), Sender, 1, "Engine::check_receipt"),
    op(
        Verify,
        Signed(Receipt),
        Client,
        1,
        "Participant::verify_receipt",
    ),
    op(Hash, Chain(Quote), Client, 1, "ParsedCerts::parse_shared"),
    op(
        Hash,
        Chain(Quote),
        Sender,
        1,
        "Trust::parse_shared (held_own_quote)",
    ),
    op(Hash, Chain(Quote), Receiver, 1, "ParsedCerts::parse_shared"),
    op(
        Hash,
        Chain(Instruction),
        Sender,
        1,
        "ParsedCerts::parse_shared",
    ),
    op(
        Hash,
        Chain(Instruction),
        Receiver,
        1,
        "ParsedCerts::parse_shared",
    ),
    op(Hash, Chain(Receipt), Sender, 1, "ParsedCerts::parse_shared"),
    op(Hash, Chain(Receipt), Client, 1, "ParsedCerts::parse_shared"),
    op(
        Hash,
        Payload(Quote),
        Sender,
        4,
        "IssuedQuotes::hold, own_terms, check (twice)",
    ),
    op(
        Hash,
        Payload(Instruction),
        Sender,
        1,
        "instruction::decode (submit_one)",
    ),
    op(
        Hash,
        Payload(Instruction),
        Receiver,
        1,
        "instruction::decode (prepare or authenticate_batch)",
    ),
    op(Hash, TransferId, Sender, 2, "transfer_id (reserve, post)"),
    op(Hash, TransferId, Receiver, 1, "credit_transfer_id"),
];

/// The sizes of a signed object as one payment of the run carried it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignedSize {
    /// The payload's length.
    pub payload: usize,
    /// The signing domain's length (the signature covers domain and payload).
    pub domain: usize,
    /// The DER length of each certificate of the signer chain.
    pub chain: Vec<usize>,
}

impl SignedSize {
    /// The sizes of `signed` under `domain`.
    pub fn of(domain: &[u8], signed: &pb::Signed) -> Self {
        Self {
            payload: signed.payload.len(),
            domain: domain.len(),
            chain: signed.signer_chain.iter().map(Vec::len).collect(),
        }
    }
}

/// The sizes of one payment's signed objects; a size the run did not see (no payment settled,
/// so no receipt) is `None`, and then there is no ceiling.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PathSizes {
    /// The quote.
    pub quote: Option<SignedSize>,
    /// The instruction.
    pub instruction: Option<SignedSize>,
    /// The receipt.
    pub receipt: Option<SignedSize>,
}

impl PathSizes {
    fn of(&self, object: Object) -> Option<&SignedSize> {
        match object {
            Quote => self.quote.as_ref(),
            Instruction => self.instruction.as_ref(),
            Receipt => self.receipt.as_ref(),
        }
    }

    /// The lengths of the messages one operation over `input` processes: one message, or one
    /// per chain certificate.
    pub fn lengths(&self, input: Input) -> Option<Vec<usize>> {
        Some(match input {
            Signed(o) => {
                let s = self.of(o)?;
                vec![s.domain.saturating_add(s.payload)]
            }
            Payload(o) => vec![self.of(o)?.payload],
            Chain(o) => self.of(o)?.chain.clone(),
            TransferId => vec![TRANSFER_ID_INPUT],
        })
    }
}

/// One row of [`PAYMENT_PATH`] with its bytes and its measured time.
#[derive(Clone, Debug, PartialEq)]
pub struct Measured {
    /// The row.
    pub op: PathOp,
    /// Bytes one operation processes (summed over a chain's certificates).
    pub bytes: usize,
    /// One operation's time on this machine.
    pub each: Duration,
}

impl Measured {
    /// This row's time per payment: count × each.
    pub fn per_payment(&self) -> Duration {
        self.each.saturating_mul(self.op.count)
    }
}

/// The crypto ceiling of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Ceiling {
    /// Every operation of the path, measured.
    pub rows: Vec<Measured>,
    /// The cores the run could use (`std::thread::available_parallelism`).
    pub cores: usize,
}

impl Ceiling {
    /// Crypto time one payment needs on one core.
    pub fn per_payment(&self) -> Duration {
        self.rows.iter().map(Measured::per_payment).sum()
    }

    /// Payments per second the crypto alone allows on [`Self::cores`].
    pub fn per_second(&self) -> Option<f64> {
        ceiling_per_second(self.per_payment(), self.cores)
    }

    /// `achieved` payments per second as a fraction of [`Self::per_second`].
    pub fn fraction(&self, achieved: f64) -> Option<f64> {
        self.per_second()
            .filter(|c| *c > 0.0)
            .map(|ceiling| achieved / ceiling)
    }

    /// How many operations of `operation` one payment needs.
    pub fn count(&self, operation: Operation) -> u32 {
        self.rows
            .iter()
            .filter(|r| r.op.operation == operation)
            .map(|r| r.op.count)
            .sum()
    }
}

/// `cores` / `per_payment`: payments per second if every core did nothing but a payment's
/// crypto; `None` for no time or no cores.
pub fn ceiling_per_second(per_payment: Duration, cores: usize) -> Option<f64> {
    let secs = per_payment.as_secs_f64();
    (secs > 0.0 && cores > 0).then(|| cores as f64 / secs)
}

/// Times every row of [`PAYMENT_PATH`] over the sizes of `sizes` on this thread; `None` when
/// a size is missing. Rows with the same operation and lengths are timed once.
pub fn measure(sizes: &PathSizes, cores: usize) -> Option<Ceiling> {
    // A fixed key: the time of Ed25519 does not depend on the key or the message's bytes.
    let key = SigningKey::from_bytes(&[7; 32]);
    let mut timed: BTreeMap<(Operation, Vec<usize>), Duration> = BTreeMap::new();
    let mut rows = Vec::with_capacity(PAYMENT_PATH.len());
    for op in PAYMENT_PATH {
        let lengths = sizes.lengths(op.input)?;
        let each = *timed
            .entry((op.operation, lengths.clone()))
            .or_insert_with(|| lengths.iter().map(|n| time(op.operation, *n, &key)).sum());
        rows.push(Measured {
            op: *op,
            bytes: lengths.iter().sum(),
            each,
        });
    }
    Some(Ceiling { rows, cores })
}

/// The mean CPU time of `operation` over a message of `len` bytes, on this thread's CPU clock:
/// time the thread spends preempted (the machine's other work) is not counted, so a busy
/// neighbour does not inflate the figure as a wall clock would.
fn time(operation: Operation, len: usize, key: &SigningKey) -> Duration {
    let message = vec![0x5a_u8; len];
    let iterations = match operation {
        Sign | Verify => SIGNATURE_ITERATIONS,
        Operation::Sha256 => HASH_ITERATIONS,
    };
    let started;
    match operation {
        Sign => {
            started = thread_cpu_time();
            for _ in 0..iterations {
                black_box(key.sign(black_box(&message)));
            }
        }
        Verify => {
            let public = key.verifying_key();
            let signature = key.sign(&message);
            started = thread_cpu_time();
            for _ in 0..iterations {
                // The signature is this key's over this message, so it verifies; the result
                // is kept only so the work is not optimized away.
                let _ = black_box(public.verify_strict(black_box(&message), &signature));
            }
        }
        Operation::Sha256 => {
            started = thread_cpu_time();
            for _ in 0..iterations {
                black_box(Sha256::digest(black_box(&message)));
            }
        }
    }
    thread_cpu_time().saturating_sub(started) / iterations
}

/// CPU time the calling thread has used so far, user and system (`CLOCK_THREAD_CPUTIME_ID`).
pub fn thread_cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// CPU time this process has used so far, every thread, user and system
/// (`CLOCK_PROCESS_CPUTIME_ID`: the kernel's accounting that `getrusage(RUSAGE_SELF)` also
/// reports, in nanoseconds).
pub fn process_cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes() -> PathSizes {
        let size = |payload| SignedSize {
            payload,
            domain: 20,
            chain: vec![500, 600],
        };
        PathSizes {
            quote: Some(size(200)),
            instruction: Some(size(900)),
            receipt: Some(size(300)),
        }
    }

    #[test]
    fn the_path_counts_what_the_code_does() {
        let count = |operation: Operation, input: Option<Input>, place: Option<Place>| -> u32 {
            PAYMENT_PATH
                .iter()
                .filter(|o| {
                    o.operation == operation
                        && input.is_none_or(|i| o.input == i)
                        && place.is_none_or(|p| o.place == p)
                })
                .map(|o| o.count)
                .sum()
        };
        // The protocol's flow: who makes each signed object, and who verifies it before
        // relying on it (the bank verifies the quote before signing at it and the receipt
        // of a settled payment; the sender takes its own quote, held byte for byte, without
        // verifying its signature again, but recognizes its chain).
        let flow = [
            (Quote, Sender, &[Client, Receiver][..]),
            (Instruction, Client, &[Sender, Receiver][..]),
            (Receipt, Receiver, &[Sender, Client][..]),
        ];
        for (object, maker, verifiers) in flow {
            for place in [Client, Sender, Receiver] {
                let signs = u32::from(place == maker);
                let verifies = u32::from(verifiers.contains(&place));
                assert_eq!(
                    count(Sign, Some(Signed(object)), Some(place)),
                    signs,
                    "{object:?} signed at {place:?}"
                );
                assert_eq!(
                    count(Verify, Some(Signed(object)), Some(place)),
                    verifies,
                    "{object:?} verified at {place:?}"
                );
                // Each verification digests the signer chain once, where it happens, and so
                // does the sender's recognition of its own quote's chain.
                let recognizes = u32::from(object == Quote && place == Sender);
                assert_eq!(
                    count(Hash, Some(Chain(object)), Some(place)),
                    verifies + recognizes,
                    "{object:?} chain digested at {place:?}"
                );
            }
        }
        let verifications: u32 = flow.iter().map(|f| f.2.len() as u32).sum();
        assert_eq!(count(Sign, None, None), flow.len() as u32);
        assert_eq!(count(Verify, None, None), verifications);
        // Besides the chains: the quote payload 4 times, the instruction payload twice (once
        // per node), and 3 transfer ids.
        let payloads =
            count(Hash, Some(Payload(Quote)), None) + count(Hash, Some(Payload(Instruction)), None);
        assert_eq!(payloads, 4 + 2);
        assert_eq!(count(Hash, Some(TransferId), None), 3);
        assert_eq!(count(Hash, None, None), verifications + 1 + payloads + 3);
    }

    #[test]
    fn lengths_cover_domain_payload_and_each_certificate() {
        let s = sizes();
        assert_eq!(s.lengths(Signed(Quote)), Some(vec![220]));
        assert_eq!(s.lengths(Payload(Instruction)), Some(vec![900]));
        assert_eq!(s.lengths(Chain(Receipt)), Some(vec![500, 600]));
        assert_eq!(s.lengths(TransferId), Some(vec![TRANSFER_ID_INPUT]));
        let no_receipt = PathSizes {
            receipt: None,
            ..sizes()
        };
        assert_eq!(no_receipt.lengths(Signed(Receipt)), None);
        assert!(measure(&no_receipt, 2).is_none());
    }

    #[test]
    fn the_ceiling_is_cores_over_the_crypto_time_of_a_payment() {
        let per_payment = Duration::from_micros(500);
        assert_eq!(ceiling_per_second(per_payment, 1), Some(2_000.0));
        assert_eq!(ceiling_per_second(per_payment, 2), Some(4_000.0));
        assert_eq!(ceiling_per_second(Duration::ZERO, 2), None);
        assert_eq!(ceiling_per_second(per_payment, 0), None);

        let row = |operation, count, micros| Measured {
            op: op(operation, TransferId, Sender, count, "test"),
            bytes: 1,
            each: Duration::from_micros(micros),
        };
        let ceiling = Ceiling {
            rows: vec![row(Sign, 3, 100), row(Verify, 5, 40)],
            cores: 2,
        };
        assert_eq!(ceiling.per_payment(), Duration::from_micros(500));
        assert_eq!(ceiling.per_second(), Some(4_000.0));
        assert_eq!(ceiling.fraction(1_000.0), Some(0.25));
        assert_eq!(ceiling.count(Verify), 5);
    }

    #[test]
    fn measured_rows_take_real_time_and_the_sizes_of_the_run() {
        let ceiling = measure(&sizes(), 2).expect("every size is known");
        assert_eq!(ceiling.rows.len(), PAYMENT_PATH.len());
        assert!(ceiling.rows.iter().all(|r| r.each > Duration::ZERO));
        let instruction = ceiling
            .rows
            .iter()
            .find(|r| r.op.operation == Sign && r.op.input == Signed(Instruction))
            .expect("the bank signs");
        assert_eq!(instruction.bytes, 920);
        assert!(ceiling.per_second().is_some_and(|c| c > 0.0));
    }

    #[test]
    fn the_process_cpu_clock_moves_forward() {
        let before = process_cpu_time();
        let mut x = 0_u64;
        for i in 0..2_000_000_u64 {
            x = black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        black_box(x);
        assert!(process_cpu_time() > before);
    }
}
