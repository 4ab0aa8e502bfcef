//! CMS SignedData: renewal requests signed with the old key, and the
//! certs-only PKCS#7 that carries a chain.
