//! The compact record format (issue 14): a format byte, then a protobuf message, with the
//! certificate chains of the signed envelopes taken out and stored once each in the
//! certificate table (see [`super::Encoder`]).
//!
//! Why: a payment record was JSON with base64 byte fields, about 5.9 KB once settled, and
//! about 3.4 KB of it were three certificate chains (the bank's on the instruction, the
//! sending node's on the quote inside it, the receiving node's on the receipt) that are the
//! same in every record. A record now refers to each certificate by its SHA-256 (32 bytes),
//! and the whole record is about 1 KB.
//!
//! Exactness: the store promises each envelope exactly as it was submitted or signed, and
//! audits re-verify those bytes. An envelope is compacted only when rebuilding it from its
//! compact form yields the original bytes (checked on every write); anything else (a foreign
//! client's non-canonical encoding, fields this build does not know, bytes that do not decode
//! at all) is stored verbatim.
//!
//! Legacy JSON records always start with `{`; a compact record starts with [`FORMAT_COMPACT`].
//! Both are read forever.

use kakehashi_proto::pb;
use prost::Message;

use super::{AccountKind, AccountMeta, InboundRecord, InboundState, OutboundRecord, OutboundState};

/// The first byte of a compact record (version 1). Legacy JSON begins with `{` (0x7b), so the
/// two never collide; a later format takes the next number.
pub(super) const FORMAT_COMPACT: u8 = 0x01;

/// A SHA-256 digest: the key of a certificate in the certificate table.
pub(super) type Digest = [u8; 32];

/// Why a stored value does not decode.
#[derive(Debug, thiserror::Error)]
pub enum Undecodable {
    /// Neither legacy JSON nor a format this build knows.
    #[error("unknown record format {0:#04x}")]
    Format(u8),
    /// An empty value.
    #[error("empty value")]
    Empty,
    /// Legacy JSON that does not parse.
    #[error("legacy JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A compact record whose message does not parse.
    #[error("compact record: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// A field outside its range (an unknown state, a u128 longer than 16 bytes, …).
    #[error("compact record: {0}")]
    Field(&'static str),
    /// A certificate the record refers to is not in the certificate table.
    #[error("certificate {0} it refers to is missing")]
    MissingCertificate(String),
    /// A certificate in the table does not hash to its key.
    #[error("certificate {0} does not match its digest")]
    CertificateMismatch(String),
    /// A compact envelope does not rebuild.
    #[error("compact envelope: {0}")]
    Envelope(&'static str),
    /// The key is not of its kind's shape.
    #[error("malformed key")]
    Key,
}

/// The certificates a record's encoding needs: the writer side hands out digests (and learns
/// which certificates to write), the reader side hands out certificates by digest.
pub(super) trait CertificateSink {
    /// Whether the certificates of `chain` may go to the table (the envelope is stored
    /// verbatim otherwise).
    fn tabled(&self, chain: &[Vec<u8>]) -> bool;

    /// The digest of `der`, noting that the record being encoded refers to it.
    fn refer(&mut self, der: &[u8]) -> Digest;
}

/// Looks certificates up by digest while a record is decoded.
pub(super) trait CertificateSource {
    /// The certificate whose SHA-256 is `digest`.
    fn certificate(&mut self, digest: &Digest) -> Result<std::sync::Arc<Vec<u8>>, Undecodable>;
}

/// A stored outbound record (see [`OutboundRecord`] for the fields).
#[derive(Clone, PartialEq, Message)]
struct StoredOutbound {
    #[prost(uint32, tag = "1")]
    state: u32,
    #[prost(message, optional, tag = "2")]
    signed_instruction: Option<StoredEnvelope>,
    #[prost(string, tag = "3")]
    instruction_sha256: String,
    #[prost(string, tag = "4")]
    peer: String,
    #[prost(string, tag = "5")]
    end_to_end_id: String,
    /// u128 fields: big-endian without leading zero bytes (zero is empty).
    #[prost(bytes = "vec", tag = "6")]
    debtor_account: Vec<u8>,
    #[prost(bytes = "vec", tag = "7")]
    amount_minor: Vec<u8>,
    #[prost(bytes = "vec", tag = "8")]
    reservation_id: Vec<u8>,
    #[prost(string, optional, tag = "9")]
    reason_code: Option<String>,
    #[prost(string, optional, tag = "10")]
    reason_detail: Option<String>,
    #[prost(string, optional, tag = "11")]
    decided_by: Option<String>,
    #[prost(message, optional, tag = "12")]
    receipt: Option<StoredEnvelope>,
    #[prost(bytes = "vec", optional, tag = "13")]
    credited_minor: Option<Vec<u8>>,
    #[prost(uint64, tag = "14")]
    created_at: u64,
    #[prost(uint64, tag = "15")]
    updated_at: u64,
}

/// A stored inbound record (see [`InboundRecord`] for the fields).
#[derive(Clone, PartialEq, Message)]
struct StoredInbound {
    #[prost(uint32, tag = "1")]
    state: u32,
    #[prost(string, tag = "2")]
    instruction_sha256: String,
    #[prost(string, tag = "3")]
    sender: String,
    #[prost(string, optional, tag = "4")]
    reason_code: Option<String>,
    #[prost(string, optional, tag = "5")]
    reason_detail: Option<String>,
    #[prost(message, optional, tag = "6")]
    receipt: Option<StoredEnvelope>,
    #[prost(bytes = "vec", tag = "7")]
    creditor_account: Vec<u8>,
    #[prost(bytes = "vec", tag = "8")]
    credited_minor: Vec<u8>,
    #[prost(bytes = "vec", tag = "9")]
    credit_transfer_id: Vec<u8>,
    #[prost(message, optional, tag = "10")]
    signed_instruction: Option<StoredEnvelope>,
    #[prost(uint64, tag = "11")]
    updated_at: u64,
}

/// A stored account's metadata (see [`AccountMeta`]).
#[derive(Clone, PartialEq, Message)]
struct StoredAccount {
    /// [`AccountKind::as_str`].
    #[prost(string, tag = "1")]
    kind: String,
    #[prost(string, optional, tag = "2")]
    owner_bic: Option<String>,
    #[prost(string, tag = "3")]
    name: String,
    #[prost(bool, tag = "4")]
    closed: bool,
}

/// An encoded `pb::Signed`: verbatim, or compact when that rebuilds it exactly.
#[derive(Clone, PartialEq, Message)]
struct StoredEnvelope {
    #[prost(oneof = "Form", tags = "1, 2")]
    form: Option<Form>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum Form {
    /// The envelope's bytes as they came.
    #[prost(bytes, tag = "1")]
    Verbatim(Vec<u8>),
    /// The envelope with its chain (and its instruction's quote's chain) by digest.
    #[prost(message, tag = "2")]
    Compact(CompactSigned),
}

/// A `pb::Signed` whose chain is stored by digest; for an instruction, its quote (a
/// `pb::Signed` inside the payload) taken out and stored the same way.
#[derive(Clone, PartialEq, Message)]
struct CompactSigned {
    /// The payload; with [`CompactSigned::quote`] set, the instruction with its quote unset.
    #[prost(bytes = "vec", tag = "1")]
    payload: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    signature: Vec<u8>,
    /// SHA-256 of each certificate of the signer's chain, in the chain's order.
    #[prost(bytes = "vec", repeated, tag = "3")]
    chain: Vec<Vec<u8>>,
    /// The instruction's quote, taken out of the payload.
    #[prost(message, optional, tag = "4")]
    quote: Option<CompactQuote>,
}

/// The quote of an instruction, as [`CompactSigned`] without a nested quote.
#[derive(Clone, PartialEq, Message)]
struct CompactQuote {
    #[prost(bytes = "vec", tag = "1")]
    payload: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    signature: Vec<u8>,
    #[prost(bytes = "vec", repeated, tag = "3")]
    chain: Vec<Vec<u8>>,
}

/// Whether an envelope's payload is an instruction, whose quote is compacted too.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Payload {
    Instruction,
    Opaque,
}

/// An outbound record in the compact format.
pub(super) fn encode_outbound(record: &OutboundRecord, sink: &mut dyn CertificateSink) -> Vec<u8> {
    let stored = StoredOutbound {
        state: outbound_state_code(record.state),
        signed_instruction: Some(envelope(
            &record.signed_instruction,
            Payload::Instruction,
            sink,
        )),
        instruction_sha256: record.instruction_sha256.clone(),
        peer: record.peer.clone(),
        end_to_end_id: record.end_to_end_id.clone(),
        debtor_account: u128_bytes(record.debtor_account),
        amount_minor: u128_bytes(record.amount_minor),
        reservation_id: u128_bytes(record.reservation_id),
        reason_code: record.reason_code.clone(),
        reason_detail: record.reason_detail.clone(),
        decided_by: record.decided_by.clone(),
        receipt: record
            .receipt
            .as_ref()
            .map(|r| envelope(r, Payload::Opaque, sink)),
        credited_minor: record.credited_minor.map(u128_bytes),
        created_at: record.created_at,
        updated_at: record.updated_at,
    };
    framed(&stored)
}

/// An inbound record in the compact format.
pub(super) fn encode_inbound(record: &InboundRecord, sink: &mut dyn CertificateSink) -> Vec<u8> {
    let stored = StoredInbound {
        state: inbound_state_code(record.state),
        instruction_sha256: record.instruction_sha256.clone(),
        sender: record.sender.clone(),
        reason_code: record.reason_code.clone(),
        reason_detail: record.reason_detail.clone(),
        receipt: record
            .receipt
            .as_ref()
            .map(|r| envelope(r, Payload::Opaque, sink)),
        creditor_account: u128_bytes(record.creditor_account),
        credited_minor: u128_bytes(record.credited_minor),
        credit_transfer_id: u128_bytes(record.credit_transfer_id),
        signed_instruction: Some(envelope(
            &record.signed_instruction,
            Payload::Instruction,
            sink,
        )),
        updated_at: record.updated_at,
    };
    framed(&stored)
}

/// Account metadata in the compact format.
pub(super) fn encode_account(meta: &AccountMeta) -> Vec<u8> {
    framed(&StoredAccount {
        kind: meta.kind.as_str().to_owned(),
        owner_bic: meta.owner_bic.clone(),
        name: meta.name.clone(),
        closed: meta.closed,
    })
}

/// An outbound record from a stored value of either format.
pub(super) fn decode_outbound(
    value: &[u8],
    source: &mut dyn CertificateSource,
) -> Result<OutboundRecord, Undecodable> {
    let Some(body) = compact_body(value)? else {
        return Ok(serde_json::from_slice(value)?);
    };
    let s = StoredOutbound::decode(body)?;
    Ok(OutboundRecord {
        state: outbound_state(s.state)?,
        signed_instruction: rebuild(s.signed_instruction.as_ref(), source)?,
        instruction_sha256: s.instruction_sha256,
        peer: s.peer,
        end_to_end_id: s.end_to_end_id,
        debtor_account: u128_from(&s.debtor_account)?,
        amount_minor: u128_from(&s.amount_minor)?,
        reservation_id: u128_from(&s.reservation_id)?,
        reason_code: s.reason_code,
        reason_detail: s.reason_detail,
        decided_by: s.decided_by,
        receipt: s
            .receipt
            .as_ref()
            .map(|r| rebuild(Some(r), source))
            .transpose()?,
        credited_minor: s.credited_minor.as_deref().map(u128_from).transpose()?,
        created_at: s.created_at,
        updated_at: s.updated_at,
    })
}

/// An inbound record from a stored value of either format.
pub(super) fn decode_inbound(
    value: &[u8],
    source: &mut dyn CertificateSource,
) -> Result<InboundRecord, Undecodable> {
    let Some(body) = compact_body(value)? else {
        return Ok(serde_json::from_slice(value)?);
    };
    let s = StoredInbound::decode(body)?;
    Ok(InboundRecord {
        state: inbound_state(s.state)?,
        instruction_sha256: s.instruction_sha256,
        sender: s.sender,
        reason_code: s.reason_code,
        reason_detail: s.reason_detail,
        receipt: s
            .receipt
            .as_ref()
            .map(|r| rebuild(Some(r), source))
            .transpose()?,
        creditor_account: u128_from(&s.creditor_account)?,
        credited_minor: u128_from(&s.credited_minor)?,
        credit_transfer_id: u128_from(&s.credit_transfer_id)?,
        signed_instruction: rebuild(s.signed_instruction.as_ref(), source)?,
        updated_at: s.updated_at,
    })
}

/// Account metadata from a stored value of either format.
pub(super) fn decode_account(
    value: &[u8],
    _certificates: &mut dyn CertificateSource,
) -> Result<AccountMeta, Undecodable> {
    let Some(body) = compact_body(value)? else {
        return Ok(serde_json::from_slice(value)?);
    };
    let s = StoredAccount::decode(body)?;
    let kind = [
        AccountKind::Corridor,
        AccountKind::Customer,
        AccountKind::Funding,
        AccountKind::Liquidity,
    ]
    .into_iter()
    .find(|kind| kind.as_str() == s.kind)
    .ok_or(Undecodable::Field("unknown account kind"))?;
    Ok(AccountMeta {
        kind,
        owner_bic: s.owner_bic,
        name: s.name,
        closed: s.closed,
    })
}

/// The message after the format byte of a compact value, or `None` for legacy JSON.
fn compact_body(value: &[u8]) -> Result<Option<&[u8]>, Undecodable> {
    match value.split_first() {
        None => Err(Undecodable::Empty),
        Some((&FORMAT_COMPACT, body)) => Ok(Some(body)),
        Some((b'{', _)) => Ok(None),
        Some((&other, _)) => Err(Undecodable::Format(other)),
    }
}

fn framed(message: &impl Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + message.encoded_len());
    out.push(FORMAT_COMPACT);
    // Encoding into a Vec grows it as needed: it cannot run out of room.
    message.encode_raw(&mut out);
    out
}

/// `bytes` as a stored envelope: compact when the compact form rebuilds exactly `bytes`,
/// verbatim otherwise.
fn envelope(bytes: &[u8], payload: Payload, sink: &mut dyn CertificateSink) -> StoredEnvelope {
    let compacted = compact(bytes, payload)
        .filter(|(_, taken)| sink.tabled(&taken.chain) && sink.tabled(&taken.quote_chain));
    let form = match compacted {
        Some((compact, certificates)) => {
            let compact = CompactSigned {
                chain: certificates
                    .chain
                    .iter()
                    .map(|der| sink.refer(der).to_vec())
                    .collect(),
                quote: compact.quote.map(|quote| CompactQuote {
                    chain: certificates
                        .quote_chain
                        .iter()
                        .map(|der| sink.refer(der).to_vec())
                        .collect(),
                    ..quote
                }),
                ..compact
            };
            Form::Compact(compact)
        }
        None => Form::Verbatim(bytes.to_vec()),
    };
    StoredEnvelope { form: Some(form) }
}

/// The chains [`compact`] took out, in order.
struct TakenChains {
    chain: Vec<Vec<u8>>,
    quote_chain: Vec<Vec<u8>>,
}

/// `bytes` split into the compact envelope (its chains still empty) and the chains taken out,
/// or `None` when that would not rebuild `bytes` exactly.
fn compact(bytes: &[u8], payload: Payload) -> Option<(CompactSigned, TakenChains)> {
    let signed = pb::Signed::decode(bytes).ok()?;
    // prost's encoding is canonical (fields in tag order, minimal varints, no unknown fields
    // kept): an envelope that re-encodes to itself is one this build can rebuild.
    if signed.encoded_len() != bytes.len() || signed.encode_to_vec() != bytes {
        return None;
    }
    let pb::Signed {
        payload: mut inner,
        signature,
        signer_chain,
    } = signed;
    let mut quote = None;
    let mut quote_chain = Vec::new();
    if payload == Payload::Instruction
        && let Ok(mut instruction) = pb::CreditTransferInstruction::decode(inner.as_slice())
        && instruction.encode_to_vec() == inner
        && let Some(signed_quote) = instruction.quote.take()
    {
        let pb::Signed {
            payload,
            signature,
            signer_chain,
        } = signed_quote;
        quote = Some(CompactQuote {
            payload,
            signature,
            chain: Vec::new(),
        });
        quote_chain = signer_chain;
        inner = instruction.encode_to_vec();
    }
    let compact = CompactSigned {
        payload: inner,
        signature,
        chain: Vec::new(),
        quote,
    };
    let chains = TakenChains {
        chain: signer_chain,
        quote_chain,
    };
    // Checked on every write rather than argued once: what the store gives back must be the
    // bytes it was given.
    let rebuilt = assemble(&compact, chains.chain.clone(), chains.quote_chain.clone()).ok()?;
    (rebuilt == bytes).then_some((compact, chains))
}

/// The envelope's original bytes.
fn rebuild(
    stored: Option<&StoredEnvelope>,
    source: &mut dyn CertificateSource,
) -> Result<Vec<u8>, Undecodable> {
    let form = stored
        .and_then(|s| s.form.as_ref())
        .ok_or(Undecodable::Envelope("no envelope"))?;
    let compact = match form {
        Form::Verbatim(bytes) => return Ok(bytes.clone()),
        Form::Compact(compact) => compact,
    };
    let mut chain_of = |digests: &[Vec<u8>]| -> Result<Vec<Vec<u8>>, Undecodable> {
        digests
            .iter()
            .map(|digest| {
                let digest: &Digest = digest
                    .as_slice()
                    .try_into()
                    .map_err(|_| Undecodable::Envelope("a digest is not 32 bytes"))?;
                Ok(source.certificate(digest)?.as_ref().clone())
            })
            .collect()
    };
    let chain = chain_of(&compact.chain)?;
    let quote_chain = match &compact.quote {
        Some(quote) => chain_of(&quote.chain)?,
        None => Vec::new(),
    };
    assemble(compact, chain, quote_chain)
}

/// The encoded `pb::Signed` of `compact` with its chains.
fn assemble(
    compact: &CompactSigned,
    chain: Vec<Vec<u8>>,
    quote_chain: Vec<Vec<u8>>,
) -> Result<Vec<u8>, Undecodable> {
    let payload = match &compact.quote {
        None => compact.payload.clone(),
        Some(quote) => {
            let mut instruction = pb::CreditTransferInstruction::decode(compact.payload.as_slice())
                .map_err(|_| Undecodable::Envelope("the instruction does not decode"))?;
            instruction.quote = Some(pb::Signed {
                payload: quote.payload.clone(),
                signature: quote.signature.clone(),
                signer_chain: quote_chain,
            });
            instruction.encode_to_vec()
        }
    };
    Ok(pb::Signed {
        payload,
        signature: compact.signature.clone(),
        signer_chain: chain,
    }
    .encode_to_vec())
}

fn outbound_state_code(state: OutboundState) -> u32 {
    match state {
        OutboundState::Reserving => 1,
        OutboundState::Forwarded => 2,
        OutboundState::Settled => 3,
        OutboundState::Rejected => 4,
    }
}

fn outbound_state(code: u32) -> Result<OutboundState, Undecodable> {
    Ok(match code {
        1 => OutboundState::Reserving,
        2 => OutboundState::Forwarded,
        3 => OutboundState::Settled,
        4 => OutboundState::Rejected,
        _ => return Err(Undecodable::Field("unknown outbound state")),
    })
}

fn inbound_state_code(state: InboundState) -> u32 {
    match state {
        InboundState::Accepting => 1,
        InboundState::Settled => 2,
        InboundState::Rejected => 3,
        InboundState::Fenced => 4,
    }
}

fn inbound_state(code: u32) -> Result<InboundState, Undecodable> {
    Ok(match code {
        1 => InboundState::Accepting,
        2 => InboundState::Settled,
        3 => InboundState::Rejected,
        4 => InboundState::Fenced,
        _ => return Err(Undecodable::Field("unknown inbound state")),
    })
}

/// `value` big-endian without its leading zero bytes: account ids and amounts are small, and
/// protobuf has no 128-bit integer.
fn u128_bytes(value: u128) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes[start..].to_vec()
}

fn u128_from(bytes: &[u8]) -> Result<u128, Undecodable> {
    if bytes.len() > 16 {
        return Err(Undecodable::Field("an integer longer than 16 bytes"));
    }
    let mut full = [0; 16];
    full[16 - bytes.len()..].copy_from_slice(bytes);
    Ok(u128::from_be_bytes(full))
}
