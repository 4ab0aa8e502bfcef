//! The emulated enterprise CA: publication to the directory, the issuance
//! policy (pure), the certificate builder, the request database, CRLs and the
//! MS-WSTEP server.

pub mod authority;
pub mod commit;
pub mod config;
pub mod crl;
pub mod db;
pub mod icpr;
pub mod init;
pub mod issue;
pub mod ndes;
pub mod policy;
pub mod pool;
pub mod profile;
pub mod publish;
pub mod revocation;
pub mod server;

pub use authority::{Authority, CaError};
pub use config::CaConfig;
