//! The emulated enterprise CA: publication to the directory, the issuance
//! policy (pure), the certificate builder, the request database, CRLs and the
//! MS-WSTEP server.

pub mod config;
pub mod crl;
pub mod db;
pub mod issue;
pub mod policy;
pub mod profile;
pub mod publish;
