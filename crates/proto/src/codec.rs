//! The protobuf codec of every kakehashi service: prost encoding, with a stricter answer to
//! bytes that do not decode.
//!
//! gRPC's status-code guide maps a message that fails to parse to INTERNAL, and tonic-prost
//! does so. For kakehashi a malformed request is the client's fault, and the API promises
//! `INVALID_ARGUMENT` with an ISO 20022 reason (FF01, invalid file format) for every malformed
//! input, so this codec answers that instead, naming the message type expected. Invalid UTF-8
//! in a `string` field is one such failure: prost refuses it while decoding.

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::ProstEncoder;

/// Metadata key carrying the ISO 20022 reason code of a refused call (also set by the
/// services for their own refusals).
pub const REASON_METADATA: &str = "kakehashi-reason-code";

/// prost encoding; decoding failures become `InvalidArgument` with reason FF01.
#[derive(Debug, Clone)]
pub struct StrictCodec<T, U> {
    _types: PhantomData<(T, U)>,
}

impl<T, U> Default for StrictCodec<T, U> {
    fn default() -> Self {
        Self {
            _types: PhantomData,
        }
    }
}

impl<T, U> Codec for StrictCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = StrictDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        StrictDecoder { _type: PhantomData }
    }
}

/// Decodes `U`, refusing undecodable bytes with `InvalidArgument`.
#[derive(Debug, Clone)]
pub struct StrictDecoder<U> {
    _type: PhantomData<U>,
}

impl<U: Message + Default> Decoder for StrictDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|error| {
            let type_name = std::any::type_name::<U>()
                .rsplit("::")
                .next()
                .unwrap_or("message");
            let mut status = Status::invalid_argument(format!(
                "FF01: the request is not a valid kakehashi.v1.{type_name}: {error}"
            ));
            status.metadata_mut().insert(
                REASON_METADATA,
                tonic::metadata::MetadataValue::from_static("FF01"),
            );
            status
        })
    }
}

// Tested end to end (tests/tests/relay_hostile.rs): tonic builds `DecodeBuf`s only inside its
// own streaming decoder, so the decoder is exercised through a real server.
