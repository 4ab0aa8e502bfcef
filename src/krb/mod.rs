//! Kerberos through the system's MIT krb5 (GSS-API), as sssd and adcli use
//! it: `/etc/krb5.conf` (or `KRB5_CONFIG`), the host keytab, the user's
//! credential cache.
//!
//! - `keytab`: the keytab file format, read to check a keytab before use.
//! - `creds`: acquiring credentials (a keytab into a private cache, or a
//!   user's cache) and checking a service ticket can be had, with errors
//!   that name the file, principal, realm or service at fault.
//! - `errors`: the krb5 error codes GSS-API reports, in words an
//!   administrator can act on.
//!
//! GSS-API calls may block (files, the KDC): callers run them on a blocking
//! thread.

pub mod creds;
pub mod errors;
pub mod keytab;

pub use creds::{Accepted, Acceptor, CredentialSource, Credentials, Negotiation, use_config};
pub use errors::KrbError;
pub use keytab::Principal;
