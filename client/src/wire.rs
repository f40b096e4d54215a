//! Request encoding and result decoding shared by both clients.

use crate::ClientError;
use codexd_proto::{Outcome, Request, RequestId, frame};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// One request line: `"jsonrpc":"2.0"`, the id, the method, the params, and `\n`.
pub(crate) fn encode_request<P: Serialize>(id: i64, method: &str, params: Option<&P>) -> Result<Vec<u8>, ClientError> {
    let params = params
        .map(serde_json::to_value)
        .transpose()
        .map_err(|e| ClientError::Protocol(format!("cannot encode the params of {method}: {e}")))?;
    frame::encode(&Request::new(RequestId::Number(id), method, params))
        .map_err(|e| ClientError::Protocol(format!("cannot encode {method}: {e}")))
}

/// The typed result of a response, or its error as [`ClientError::Daemon`].
pub(crate) fn decode_outcome<R: DeserializeOwned>(method: &str, outcome: Outcome) -> Result<R, ClientError> {
    match outcome {
        Outcome::Result(value) => serde_json::from_value(value)
            .map_err(|e| ClientError::bad_reply(&format!("the result of {method} has an unexpected shape"), &e)),
        Outcome::Error(error) => Err(ClientError::Daemon(error)),
    }
}
