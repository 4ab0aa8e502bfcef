//! Plain data shared by every layer: identifiers (SIDs, GUIDs), periods, template
//! flag sets, templates, enrollment services, accounts and their tokens, and the
//! reasons attached to decisions. Nothing here does I/O.

pub mod account;
pub mod flags;
pub mod guid;
pub mod period;
pub mod reason;
pub mod sid;
pub mod template;

pub use account::{Account, Context, Token};
pub use flags::{EnrollmentFlags, GeneralFlags, NameFlags, PrivateKeyFlags};
pub use guid::Guid;
pub use period::Period;
pub use reason::{SkipReason, UnusableSuccessor};
pub use sid::Sid;
pub use template::{EnrollmentService, Template};
