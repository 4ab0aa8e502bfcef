//! Certificate helpers shared by the client and the CA: reading the Microsoft
//! extensions that carry a certificate's template identity.

pub mod template_ext;

pub use template_ext::{CertificateInfo, PkiError, TemplateIdentity};
