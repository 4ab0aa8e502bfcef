//! Certificate helpers shared by the client and the CA: keys, PKCS#10 requests,
//! CMS, the Microsoft extensions that carry a certificate's template identity,
//! and CRLs.

pub mod cms;
pub mod crl;
pub mod csr;
pub(crate) mod der_cursor;
pub mod keyref;
pub mod keys;
pub mod pkcs12;
pub mod revocation;
pub mod template_ext;

pub use crl::{Crl, Revocations};
pub use template_ext::{CertificateInfo, PkiError, TemplateIdentity};
