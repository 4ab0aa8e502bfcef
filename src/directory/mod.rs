//! Reading the directory: finding its DCs in DNS, the LDAP connection, the
//! snapshot of everything a pulse needs, the codecs of AD's binary values
//! (security descriptors, SDDL), the access check, and the eligibility rules
//! built on them.
//!
//! Architecture invariant: only `connection`, `snapshot`, `server_marker` and
//! `discovery` (DNS) do I/O; the codecs, the access check and eligibility are pure (and so is
//! `discovery::order`).

pub mod access;
pub mod connection;
pub mod discovery;
pub mod eligibility;
pub mod entry;
pub mod saved;
pub mod sd;
pub mod sddl;
pub mod server_marker;
pub mod snapshot;

pub use connection::{Directory, DirectoryError};
pub use eligibility::{Options, Verdict, judge};
pub use snapshot::{
    DirectorySnapshot, NamingContexts, RawSnapshot, TemplateEntry, UnusableTemplate,
};
