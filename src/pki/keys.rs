//! Key pairs of requesters and of the CA, through aws-lc-rs only.

use serde::{Deserialize, Serialize};

/// What a public or private key is: the algorithm and its strength.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyAlgorithm {
    Rsa { bits: u32 },
    EcdsaP256,
    EcdsaP384,
}
