//! Certificate helpers shared by the client and the CA: the Microsoft extensions
//! that carry a certificate's template identity, and CRLs.

pub mod crl;
pub mod template_ext;

pub use crl::{Crl, Revocations};
pub use template_ext::{CertificateInfo, PkiError, TemplateIdentity};
