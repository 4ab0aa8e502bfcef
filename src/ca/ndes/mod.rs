//! The NDES role of the emulated CA: what the Network Device Enrollment
//! Service serves in front of an enterprise CA.
//!
//! - `ra`: the RA certificates (signing, like NDES's "Exchange Enrollment
//!   Agent (Offline request)", and encryption, like its "CEP Encryption"),
//!   issued by the CA at `ca init` and renewed when they near their end.
//! - `purpose`: the template of a request, by the key usage it asks for
//!   (`SignatureTemplate`, `EncryptionTemplate`, `GeneralPurposeTemplate`).
//! - `challenge`: one-time challenge passwords (the `mscep_admin` page),
//!   stored hashed, single use, with a lifetime.
//! - `dynamic`: challenges bound to a subject, SANs and key usage, sealed
//!   and signed by the CA (the partner-CA style of validation), and the
//!   pure verification decision.
//! - `events`: the role's events, stable IDs and diagnostic codes.
//! - `service`: GetCACaps, GetCACert and PKIOperation (RFC 8894 4).
//! - `http`: the three paths over HTTP(S).
//!
//! The issuance itself is the CA's: every request goes through
//! `ca::policy::decide` as the NDES service account, with the template its
//! purpose selects.

pub mod challenge;
pub mod dynamic;
pub mod events;
pub mod http;
pub mod purpose;
pub mod ra;
pub mod service;

/// The path NDES serves SCEP at.
pub const MSCEP_PATH: &str = "/certsrv/mscep/mscep.dll";
/// The one-time challenge page (HTTPS only: it takes credentials).
pub const ADMIN_PATH: &str = "/certsrv/mscep_admin/";
/// The dynamic challenge endpoint (HTTPS only).
pub const CHALLENGE_PATH: &str = "/certsrv/mscep_challenge/";
