//! The enrollment client: requests for a template, the WSTEP exchange with a
//! CA, and the checks on what comes back.

pub mod client;
pub mod request;
pub mod route;
pub mod rpc;
pub mod transport;

pub use client::{ClientError, EnrollmentClient, Outcome};
pub use request::{
    Rejected, check_issued, enrollment_request, renewal_refusal_needs_enrollment, renewal_request,
};
