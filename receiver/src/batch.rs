//! A delivery's webhooks: one webhook or an array of them, as PassFort sent them.
//!
//! A [`Batch`] is only ever made by verification ([`crate::verify`]), and handed on as a
//! [`Verified<Batch>`](crate::verify::Verified): the store's insert takes nothing else.

use crate::secret::SecretSet;
use crate::verify::{self, Rejection, Verified};
use crate::webhook::Webhook;

/// How the webhooks travelled: PassFort sends one object without batching, an array with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// The body was one webhook object (PassFort's 10 s answer limit applies).
    Single,
    /// The body was a JSON array (PassFort's 5 s answer limit applies).
    Array,
}

/// The webhooks of one request, in the order they were sent, secrets removed.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    shape: Shape,
    webhooks: Vec<Webhook>,
}

impl Batch {
    /// How the body was shaped.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// The webhooks, in the order they were sent.
    pub fn webhooks(&self) -> &[Webhook] {
        &self.webhooks
    }

    /// How many webhooks the request carried.
    pub fn len(&self) -> usize {
        self.webhooks.len()
    }

    /// Whether the request carried no webhook (an empty array).
    pub fn is_empty(&self) -> bool {
        self.webhooks.is_empty()
    }

    /// Checks a request's one `Authorization` value and its body the way PassFort's contract
    /// requires, and reads its webhooks. See [`crate::verify`] for the checks and their order;
    /// a request with several `Authorization` headers must be refused before this
    /// ([`verify::authorization`] does).
    pub fn verify(
        secrets: &SecretSet,
        authorization: Option<&[u8]>,
        body: &[u8],
    ) -> Result<Verified<Batch>, Rejection> {
        let bearer = verify::check_bearer(secrets, authorization)?;
        verify::verify_body(secrets, &bearer, body)
    }

    /// A batch of already-verified webhooks (only verification calls this).
    pub(crate) fn new(shape: Shape, webhooks: Vec<Webhook>) -> Self {
        Self { shape, webhooks }
    }
}
