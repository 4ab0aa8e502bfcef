//! PKCS#10 certificate requests: built by the client, checked by the CA.

use super::keys::KeyAlgorithm;
use super::template_ext::TemplateIdentity;

/// A PKCS#10 request whose self-signature has been verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCsr {
    /// The request as received.
    pub der: Vec<u8>,
    /// Subject in RFC 4514 text; empty when the request has an empty subject.
    pub subject: String,
    /// The subject's commonName, if any.
    pub subject_common_name: Option<String>,
    /// SubjectPublicKeyInfo, DER.
    pub public_key: Vec<u8>,
    pub key_algorithm: KeyAlgorithm,
    /// Template identity from the requested extensions 1.3.6.1.4.1.311.21.7 / 20.2.
    pub template: Option<TemplateIdentity>,
    /// DNS names of a requested subjectAltName extension.
    pub requested_dns_names: Vec<String>,
    /// Attribute 1.3.6.1.4.1.311.13.1: DER of the certificate being renewed.
    pub renewal_certificate: Option<Vec<u8>>,
}
