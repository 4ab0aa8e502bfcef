//! The four flag sets of a certificate template ([MS-CRTD] 2.4, 2.26, 2.27, 2.28).
//!
//! AD returns every integer as a signed 32-bit decimal string; the directory
//! reader reinterprets the bits as `u32` before building these sets. Unknown bits
//! are kept (`from_bits_retain`) so that nothing the directory says is lost.

use bitflags::bitflags;

bitflags! {
    /// The template's `flags` attribute ([MS-CRTD] 2.4).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct GeneralFlags: u32 {
        const ADD_EMAIL = 0x2;
        const PUBLISH_TO_DS = 0x8;
        const EXPORTABLE_KEY = 0x10;
        /// Version 1 templates mark autoenrollment here.
        const AUTO_ENROLLMENT = 0x20;
        /// A computer certificate: only the machine context requests it.
        const MACHINE_TYPE = 0x40;
        const IS_CA = 0x80;
        const ADD_TEMPLATE_NAME = 0x200;
        const IS_CROSS_CA = 0x800;
        const DONOTPERSISTINDB = 0x1000;
        const IS_DEFAULT = 0x10000;
        const IS_MODIFIED = 0x20000;
    }
}

bitflags! {
    /// `msPKI-Enrollment-Flag` ([MS-CRTD] 2.26).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct EnrollmentFlags: u32 {
        const INCLUDE_SYMMETRIC_ALGORITHMS = 0x1;
        const PEND_ALL_REQUESTS = 0x2;
        const PUBLISH_TO_KRA_CONTAINER = 0x4;
        const PUBLISH_TO_DS = 0x8;
        const AUTO_ENROLLMENT_CHECK_USER_DS_CERTIFICATE = 0x10;
        const AUTO_ENROLLMENT = 0x20;
        const PREVIOUS_APPROVAL_VALIDATE_REENROLLMENT = 0x40;
        const USER_INTERACTION_REQUIRED = 0x100;
        const REMOVE_INVALID_CERTIFICATE_FROM_PERSONAL_STORE = 0x400;
        const ALLOW_ENROLL_ON_BEHALF_OF = 0x800;
        const ADD_OCSP_NOCHECK = 0x1000;
        const ENABLE_KEY_REUSE_ON_NT_TOKEN_KEYSET_STORAGE_FULL = 0x2000;
        const NOREVOCATIONINFOINISSUEDCERTS = 0x4000;
        const INCLUDE_BASIC_CONSTRAINTS_FOR_EE_CERTS = 0x8000;
        /// The CA skips the Enroll check for key-based renewals.
        const ALLOW_PREVIOUS_APPROVAL_KEYBASEDRENEWAL_VALIDATE_REENROLLMENT = 0x10000;
        const ISSUANCE_POLICIES_FROM_REQUEST = 0x20000;
        const SKIP_AUTO_RENEWAL = 0x40000;
        const NO_SECURITY_EXTENSION = 0x80000;
    }
}

bitflags! {
    /// `msPKI-Private-Key-Flag` ([MS-CRTD] 2.27). Two nibble fields ride in it:
    /// the minimum CA version and the minimum client version.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct PrivateKeyFlags: u32 {
        const REQUIRE_PRIVATE_KEY_ARCHIVAL = 0x1;
        const EXPORTABLE_KEY = 0x10;
        const STRONG_KEY_PROTECTION_REQUIRED = 0x20;
        const REQUIRE_ALTERNATE_SIGNATURE_ALGORITHM = 0x40;
        const REQUIRE_SAME_KEY_RENEWAL = 0x80;
        const USE_LEGACY_PROVIDER = 0x100;
        const ATTEST_PREFERRED = 0x1000;
        const ATTEST_REQUIRED = 0x2000;
        const SERVER_VERSION_MASK = 0x000F_0000;
        const CLIENT_VERSION_MASK = 0x0F00_0000;
    }
}

impl PrivateKeyFlags {
    /// The minimum client version the template asks for (0 = any).
    pub fn client_version(self) -> u32 {
        (self.bits() & Self::CLIENT_VERSION_MASK.bits()) >> 24
    }

    /// The minimum CA version the template asks for (0 = any).
    pub fn server_version(self) -> u32 {
        (self.bits() & Self::SERVER_VERSION_MASK.bits()) >> 16
    }
}

bitflags! {
    /// `msPKI-Certificate-Name-Flag` ([MS-CRTD] 2.28): where subject and SAN come from.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct NameFlags: u32 {
        const ENROLLEE_SUPPLIES_SUBJECT = 0x1;
        const OLD_CERT_SUPPLIES_SUBJECT_AND_ALT_NAME = 0x8;
        const ENROLLEE_SUPPLIES_SUBJECT_ALT_NAME = 0x1_0000;
        const SUBJECT_ALT_REQUIRE_DOMAIN_DNS = 0x40_0000;
        const SUBJECT_ALT_REQUIRE_SPN = 0x80_0000;
        const SUBJECT_ALT_REQUIRE_DIRECTORY_GUID = 0x100_0000;
        const SUBJECT_ALT_REQUIRE_UPN = 0x200_0000;
        const SUBJECT_ALT_REQUIRE_EMAIL = 0x400_0000;
        const SUBJECT_ALT_REQUIRE_DNS = 0x800_0000;
        const SUBJECT_REQUIRE_DNS_AS_CN = 0x1000_0000;
        const SUBJECT_REQUIRE_EMAIL = 0x2000_0000;
        const SUBJECT_REQUIRE_COMMON_NAME = 0x4000_0000;
        const SUBJECT_REQUIRE_DIRECTORY_PATH = 0x8000_0000;
    }
}

/// Names of the set bits, for people: `MACHINE_TYPE|IS_DEFAULT|0x100000`.
pub fn describe<F: bitflags::Flags<Bits = u32>>(flags: F) -> String {
    let mut names: Vec<String> = flags
        .iter_names()
        .filter(|(_, f)| f.bits().count_ones() == 1)
        .map(|(n, _)| n.to_string())
        .collect();
    let known: u32 = F::FLAGS
        .iter()
        .filter(|f| f.value().bits().count_ones() == 1)
        .fold(0, |acc, f| acc | f.value().bits());
    let rest = flags.bits() & !known;
    if rest != 0 {
        names.push(format!("{rest:#x}"));
    }
    if names.is_empty() {
        "0".into()
    } else {
        names.join("|")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_ldap_value_keeps_every_bit() {
        // 0xA6000000 as AD sends it.
        let raw = (-1_509_949_440i32) as u32;
        let n = NameFlags::from_bits_retain(raw);
        assert!(n.contains(NameFlags::SUBJECT_REQUIRE_DIRECTORY_PATH));
        assert!(n.contains(NameFlags::SUBJECT_REQUIRE_EMAIL));
        assert!(n.contains(NameFlags::SUBJECT_ALT_REQUIRE_UPN));
        assert!(n.contains(NameFlags::SUBJECT_ALT_REQUIRE_EMAIL));
        assert_eq!(n.bits(), 0xA600_0000);
    }

    #[test]
    fn version_fields() {
        let p = PrivateKeyFlags::from_bits_retain(0x0602_0010);
        assert_eq!(p.client_version(), 6);
        assert_eq!(p.server_version(), 2);
    }

    #[test]
    fn describe_names_and_unknown_bits() {
        let g = GeneralFlags::from_bits_retain(0x40 | 0x10000 | 0x10_0000);
        assert_eq!(describe(g), "MACHINE_TYPE|IS_DEFAULT|0x100000");
        assert_eq!(describe(GeneralFlags::empty()), "0");
    }
}
