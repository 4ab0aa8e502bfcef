//! autoenroll: Active Directory certificate autoenrollment for Linux hosts.
//!
//! The library holds everything; `main.rs` is a thin CLI over it. See
//! `ARCHITECTURE.md` for the map of modules and the rules between them.

pub mod ca;
pub mod clock;
pub mod directory;
pub mod enroll;
pub mod keystore;
pub mod krb;
pub mod lab;
pub mod model;
pub mod pki;
pub mod planner;
pub mod policy;
pub mod pulse;
pub mod rpc;
pub mod scep;
pub mod store;
pub mod worker;
pub mod wstep;
