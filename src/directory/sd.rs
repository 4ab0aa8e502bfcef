//! Self-relative security descriptors: the binary `nTSecurityDescriptor` of a
//! directory object ([MS-DTYP] 2.4.6), its ACLs ([MS-DTYP] 2.4.5) and ACEs
//! ([MS-DTYP] 2.4.4).
//!
//! Who may enroll for a certificate template is written in the template's security
//! descriptor, so the engine must read it from the directory, and the emulated CA
//! and the lab must write it. No maintained crate does both directions for object
//! ACEs, hence this codec. The decoder treats its input as hostile: every count,
//! size and offset is checked, and a bad descriptor yields an [`SdError`] that says
//! what was expected where, never a panic.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! SECURITY_DESCRIPTOR  revision(1)=1 sbz1(1) control(2) offOwner(4) offGroup(4)
//!                      offSacl(4) offDacl(4), offsets from the start, 0 = absent
//! ACL                  revision(1)=2|4 sbz1(1) size(2) count(2) sbz2(2), ACEs
//! ACE header           type(1) flags(1) size(2, a multiple of 4, header included)
//! allowed/denied/audit header mask(4) SID
//! object ACE           header mask(4) objectFlags(4) [ObjectType(16)]
//!                      [InheritedObjectType(16)] SID
//! ```
//!
//! ACE types this module does not interpret (callback, alarm, mandatory label, ...)
//! are kept as [`AceType::Other`] with their raw body, so decoding and encoding again
//! reproduces them byte for byte.

use crate::model::{Guid, Sid, sid::SidError};

/// The security descriptor revision ([MS-DTYP] 2.4.6 `Revision`).
const SD_REVISION: u8 = 1;
/// Size of the self-relative header.
const SD_HEADER_LEN: usize = 20;
/// `ACL_REVISION` ([MS-DTYP] 2.4.5): ACLs with only basic ACE types.
pub const ACL_REVISION: u8 = 2;
/// `ACL_REVISION_DS` ([MS-DTYP] 2.4.5): ACLs that may hold object ACEs.
pub const ACL_REVISION_DS: u8 = 4;
const ACL_HEADER_LEN: usize = 8;
const ACE_HEADER_LEN: usize = 4;
/// Object ACE `Flags` bits ([MS-DTYP] 2.4.4.3).
const ACE_OBJECT_TYPE_PRESENT: u32 = 0x1;
const ACE_INHERITED_OBJECT_TYPE_PRESENT: u32 = 0x2;

/// `SECURITY_DESCRIPTOR.Control` bits ([MS-DTYP] 2.4.6).
pub mod control {
    /// OD: the owner was set by a default mechanism.
    pub const OWNER_DEFAULTED: u16 = 0x0001;
    /// GD: the group was set by a default mechanism.
    pub const GROUP_DEFAULTED: u16 = 0x0002;
    /// DP: the descriptor has a DACL.
    pub const DACL_PRESENT: u16 = 0x0004;
    /// DD: the DACL was set by a default mechanism.
    pub const DACL_DEFAULTED: u16 = 0x0008;
    /// SP: the descriptor has a SACL.
    pub const SACL_PRESENT: u16 = 0x0010;
    /// SD: the SACL was set by a default mechanism.
    pub const SACL_DEFAULTED: u16 = 0x0020;
    /// DT: the DACL is trusted (server security).
    pub const DACL_TRUSTED: u16 = 0x0040;
    /// SS: server security.
    pub const SERVER_SECURITY: u16 = 0x0080;
    /// DC / SDDL `AR` on the DACL: auto-inheritance requested.
    pub const DACL_AUTO_INHERIT_REQ: u16 = 0x0100;
    /// SC / SDDL `AR` on the SACL.
    pub const SACL_AUTO_INHERIT_REQ: u16 = 0x0200;
    /// DI / SDDL `AI` on the DACL: the DACL was built with auto-inheritance.
    pub const DACL_AUTO_INHERITED: u16 = 0x0400;
    /// SI / SDDL `AI` on the SACL.
    pub const SACL_AUTO_INHERITED: u16 = 0x0800;
    /// PD / SDDL `P` on the DACL: inherited ACEs are blocked.
    pub const DACL_PROTECTED: u16 = 0x1000;
    /// PS / SDDL `P` on the SACL.
    pub const SACL_PROTECTED: u16 = 0x2000;
    /// RM: `Sbz1` holds resource-manager bits.
    pub const RM_CONTROL_VALID: u16 = 0x4000;
    /// SR: the descriptor is self-relative (always, in the directory).
    pub const SELF_RELATIVE: u16 = 0x8000;
}

/// `ACE_HEADER.AceFlags` bits ([MS-DTYP] 2.4.4.1).
pub mod ace_flags {
    /// OI: inherited by non-container children.
    pub const OBJECT_INHERIT: u8 = 0x01;
    /// CI: inherited by container children.
    pub const CONTAINER_INHERIT: u8 = 0x02;
    /// NP: inherited one level only.
    pub const NO_PROPAGATE_INHERIT: u8 = 0x04;
    /// IO: only for inheritance; does not apply to this object (the access check skips it).
    pub const INHERIT_ONLY: u8 = 0x08;
    /// ID: this ACE was inherited from a parent.
    pub const INHERITED: u8 = 0x10;
    /// SA: audit successful access (SACL ACEs).
    pub const SUCCESSFUL_ACCESS: u8 = 0x40;
    /// FA: audit failed access (SACL ACEs).
    pub const FAILED_ACCESS: u8 = 0x80;
}

/// Access mask bits ([MS-DTYP] 2.4.3; directory-specific rights [MS-ADTS] 5.1.3.2),
/// with the SDDL name of each in its doc.
pub mod rights {
    /// CC: create child objects.
    pub const CREATE_CHILD: u32 = 0x0000_0001;
    /// DC: delete child objects.
    pub const DELETE_CHILD: u32 = 0x0000_0002;
    /// LC: list children.
    pub const LIST_CHILDREN: u32 = 0x0000_0004;
    /// SW: validated write ("self").
    pub const SELF_WRITE: u32 = 0x0000_0008;
    /// RP: read properties.
    pub const READ_PROPERTY: u32 = 0x0000_0010;
    /// WP: write properties.
    pub const WRITE_PROPERTY: u32 = 0x0000_0020;
    /// DT: delete the subtree.
    pub const DELETE_TREE: u32 = 0x0000_0040;
    /// LO: list the object.
    pub const LIST_OBJECT: u32 = 0x0000_0080;
    /// CR: control access, i.e. extended rights such as Enroll and AutoEnroll.
    pub const CONTROL_ACCESS: u32 = 0x0000_0100;
    /// SD: delete the object.
    pub const DELETE: u32 = 0x0001_0000;
    /// RC: read the security descriptor (without the SACL).
    pub const READ_CONTROL: u32 = 0x0002_0000;
    /// WD: modify the DACL.
    pub const WRITE_DAC: u32 = 0x0004_0000;
    /// WO: take ownership.
    pub const WRITE_OWNER: u32 = 0x0008_0000;
    /// Synchronize (no SDDL name).
    pub const SYNCHRONIZE: u32 = 0x0010_0000;
    /// Access the SACL (no SDDL name).
    pub const ACCESS_SYSTEM_SECURITY: u32 = 0x0100_0000;
    /// Maximum allowed (no SDDL name).
    pub const MAXIMUM_ALLOWED: u32 = 0x0200_0000;
    /// GA: generic all.
    pub const GENERIC_ALL: u32 = 0x1000_0000;
    /// GX: generic execute.
    pub const GENERIC_EXECUTE: u32 = 0x2000_0000;
    /// GW: generic write.
    pub const GENERIC_WRITE: u32 = 0x4000_0000;
    /// GR: generic read.
    pub const GENERIC_READ: u32 = 0x8000_0000;
    /// "Full control" on a directory object: every DS right plus the standard ones.
    pub const FULL_CONTROL: u32 = 0x000F_01FF;
    /// FA: all file access.
    pub const FILE_ALL_ACCESS: u32 = 0x001F_01FF;
    /// FR: file generic read.
    pub const FILE_GENERIC_READ: u32 = 0x0012_0089;
    /// FW: file generic write.
    pub const FILE_GENERIC_WRITE: u32 = 0x0012_0116;
    /// FX: file generic execute.
    pub const FILE_GENERIC_EXECUTE: u32 = 0x0012_00A0;
    /// KA: all registry key access.
    pub const KEY_ALL_ACCESS: u32 = 0x000F_003F;
    /// KR: registry key read.
    pub const KEY_READ: u32 = 0x0002_0019;
    /// KW: registry key write.
    pub const KEY_WRITE: u32 = 0x0002_0006;
    /// KX: registry key execute (the same bits as KR).
    pub const KEY_EXECUTE: u32 = 0x0002_0019;
}

/// A security descriptor ([MS-DTYP] 2.4.6), decoded from or encoded to its
/// self-relative binary form.
///
/// `dacl: None` means "no DACL" (everyone is granted everything); this also covers a
/// NULL DACL (DACL_PRESENT set with offset 0), which means the same.
/// `Some` with no ACEs denies everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityDescriptor {
    /// [`control`] bits. After decoding, SELF_RELATIVE is set and DACL_PRESENT /
    /// SACL_PRESENT match `dacl` / `sacl`; the encoder enforces the same.
    pub control: u16,
    pub owner: Option<Sid>,
    pub group: Option<Sid>,
    pub sacl: Option<Acl>,
    pub dacl: Option<Acl>,
}

/// An access control list ([MS-DTYP] 2.4.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    /// [`ACL_REVISION`] (2) or [`ACL_REVISION_DS`] (4). The encoder writes 4 when an
    /// ACE needs it (object ACEs) or when this says 4, otherwise 2; the decoder
    /// reports the revision read, raised to 4 when the ACL holds object ACEs.
    pub revision: u8,
    pub aces: Vec<Ace>,
}

/// An access control entry ([MS-DTYP] 2.4.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ace {
    pub ace_type: AceType,
    /// [`ace_flags`] bits.
    pub flags: u8,
    /// Access mask: [`rights`] bits.
    pub mask: u32,
    /// Object ACEs: the property, property set, extended right or child class the
    /// ACE is about; `None` means all of them. Always `None` for other types.
    pub object_type: Option<Guid>,
    /// Object ACEs: the class of children that inherit the ACE; `None` means all.
    pub inherited_object_type: Option<Guid>,
    /// The trustee.
    pub sid: Sid,
    /// For [`AceType::Other`] only: the ACE body after the 4-byte header, as read.
    /// The encoder writes it back verbatim (padded with zeros to a multiple of 4) and
    /// ignores `mask`, `sid` and the GUIDs, which the decoder fills in on a best-effort
    /// basis for display (`sid` is the NULL SID `S-1-0-0` when none could be read).
    /// `None` for the types this module understands, and for an `Other` ACE built by
    /// hand, which is then encoded from its fields.
    pub raw: Option<Vec<u8>>,
}

/// `ACE_HEADER.AceType` ([MS-DTYP] 2.4.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AceType {
    /// 0x00 ACCESS_ALLOWED_ACE_TYPE.
    AccessAllowed,
    /// 0x01 ACCESS_DENIED_ACE_TYPE.
    AccessDenied,
    /// 0x02 SYSTEM_AUDIT_ACE_TYPE.
    SystemAudit,
    /// 0x05 ACCESS_ALLOWED_OBJECT_ACE_TYPE.
    AccessAllowedObject,
    /// 0x06 ACCESS_DENIED_OBJECT_ACE_TYPE.
    AccessDeniedObject,
    /// 0x07 SYSTEM_AUDIT_OBJECT_ACE_TYPE.
    SystemAuditObject,
    /// Any other type byte (alarm, callback, mandatory label, ...). Never one of the
    /// values above when it comes from the decoder.
    Other(u8),
}

impl AceType {
    /// The type for a type byte.
    pub fn from_u8(t: u8) -> AceType {
        match t {
            0x00 => AceType::AccessAllowed,
            0x01 => AceType::AccessDenied,
            0x02 => AceType::SystemAudit,
            0x05 => AceType::AccessAllowedObject,
            0x06 => AceType::AccessDeniedObject,
            0x07 => AceType::SystemAuditObject,
            other => AceType::Other(other),
        }
    }

    /// The type byte.
    pub fn to_u8(self) -> u8 {
        match self {
            AceType::AccessAllowed => 0x00,
            AceType::AccessDenied => 0x01,
            AceType::SystemAudit => 0x02,
            AceType::AccessAllowedObject => 0x05,
            AceType::AccessDeniedObject => 0x06,
            AceType::SystemAuditObject => 0x07,
            AceType::Other(t) => t,
        }
    }

    /// Whether the body has the object layout (flags and optional GUIDs before the
    /// SID). Besides the three object types this holds for the object callback types
    /// 0x0B, 0x0C, 0x0F and 0x10 ([MS-DTYP] 2.4.4.7-2.4.4.12) and the obsolete object
    /// alarm 0x08; an ACL holding any of them must have revision 4.
    pub fn is_object(self) -> bool {
        matches!(self.to_u8(), 0x05..=0x08 | 0x0B | 0x0C | 0x0F | 0x10)
    }
}

impl Ace {
    fn plain(ace_type: AceType, sid: Sid, mask: u32) -> Ace {
        Ace {
            ace_type,
            flags: 0,
            mask,
            object_type: None,
            inherited_object_type: None,
            sid,
            raw: None,
        }
    }

    /// An ACCESS_ALLOWED_ACE.
    pub fn allowed(sid: Sid, mask: u32) -> Ace {
        Ace::plain(AceType::AccessAllowed, sid, mask)
    }

    /// An ACCESS_DENIED_ACE.
    pub fn denied(sid: Sid, mask: u32) -> Ace {
        Ace::plain(AceType::AccessDenied, sid, mask)
    }

    /// An ACCESS_ALLOWED_OBJECT_ACE for `object_type` (`None`: every object type).
    pub fn allowed_object(sid: Sid, mask: u32, object_type: Option<Guid>) -> Ace {
        Ace {
            object_type,
            ..Ace::plain(AceType::AccessAllowedObject, sid, mask)
        }
    }

    /// An ACCESS_DENIED_OBJECT_ACE for `object_type` (`None`: every object type).
    pub fn denied_object(sid: Sid, mask: u32, object_type: Option<Guid>) -> Ace {
        Ace {
            object_type,
            ..Ace::plain(AceType::AccessDeniedObject, sid, mask)
        }
    }

    /// The same ACE with these [`ace_flags`].
    pub fn with_flags(self, flags: u8) -> Ace {
        Ace { flags, ..self }
    }

    /// Whether this ACE only serves inheritance (flag IO) and so does not apply to
    /// the object that holds it.
    pub fn is_inherit_only(&self) -> bool {
        self.flags & ace_flags::INHERIT_ONLY != 0
    }

    /// The body as the encoder writes it, before the header (unpadded).
    fn body(&self) -> Vec<u8> {
        if let (AceType::Other(_), Some(raw)) = (self.ace_type, &self.raw) {
            return raw.clone();
        }
        let mut body = Vec::with_capacity(44 + self.sid.binary_len());
        body.extend_from_slice(&self.mask.to_le_bytes());
        if self.ace_type.is_object() {
            let mut object_flags = 0;
            if self.object_type.is_some() {
                object_flags |= ACE_OBJECT_TYPE_PRESENT;
            }
            if self.inherited_object_type.is_some() {
                object_flags |= ACE_INHERITED_OBJECT_TYPE_PRESENT;
            }
            body.extend_from_slice(&u32::to_le_bytes(object_flags));
            for guid in [self.object_type, self.inherited_object_type]
                .into_iter()
                .flatten()
            {
                body.extend_from_slice(&guid.to_bytes());
            }
        }
        body.extend_from_slice(&self.sid.to_bytes());
        body
    }

    /// Encodes the ACE ([MS-DTYP] 2.4.4.1 header and body); `index` names it in errors.
    fn encode(&self, which: &'static str, index: usize, out: &mut Vec<u8>) -> Result<(), SdError> {
        let mut body = self.body();
        while !body.len().is_multiple_of(4) {
            body.push(0);
        }
        let size = ACE_HEADER_LEN + body.len();
        let size16 = u16::try_from(size).map_err(|_| SdError::TooLarge {
            what: format!("{which} ACE {index}"),
            size,
        })?;
        out.push(self.ace_type.to_u8());
        out.push(self.flags);
        out.extend_from_slice(&size16.to_le_bytes());
        out.extend_from_slice(&body);
        Ok(())
    }
}

impl Acl {
    /// An ACL holding `aces`, with the revision they need (4 with object ACEs, else 2).
    pub fn new(aces: Vec<Ace>) -> Acl {
        let revision = if aces.iter().any(|a| a.ace_type.is_object()) {
            ACL_REVISION_DS
        } else {
            ACL_REVISION
        };
        Acl { revision, aces }
    }

    /// The revision the encoder writes.
    fn encoded_revision(&self) -> u8 {
        if self.revision == ACL_REVISION_DS || self.aces.iter().any(|a| a.ace_type.is_object()) {
            ACL_REVISION_DS
        } else {
            ACL_REVISION
        }
    }

    /// Encodes the ACL ([MS-DTYP] 2.4.5); `which` ("DACL", "SACL") names it in errors.
    fn encode(&self, which: &'static str) -> Result<Vec<u8>, SdError> {
        let mut out = vec![0; ACL_HEADER_LEN];
        for (index, ace) in self.aces.iter().enumerate() {
            ace.encode(which, index, &mut out)?;
        }
        let size = out.len();
        let too_large = |size| SdError::TooLarge {
            what: which.to_string(),
            size,
        };
        let size16 = u16::try_from(size).map_err(|_| too_large(size))?;
        let count = u16::try_from(self.aces.len()).map_err(|_| too_large(size))?;
        out[0] = self.encoded_revision();
        out[2..4].copy_from_slice(&size16.to_le_bytes());
        out[4..6].copy_from_slice(&count.to_le_bytes());
        Ok(out)
    }
}

/// What is wrong with one ACE; part of [`SdError::Ace`].
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AceProblem {
    #[error(
        "the ACL announces {count} ACEs but ends (size {acl_size}) before this ACE's 4-byte header"
    )]
    MissingHeader { count: u16, acl_size: u16 },
    #[error("size {size} is smaller than the 4-byte ACE header")]
    SizeTooSmall { size: u16 },
    #[error("size {size} is not a multiple of 4")]
    SizeNotAligned { size: u16 },
    #[error("size {size} runs past the ACL end (size {acl_size})")]
    SizePastAclEnd { size: u16, acl_size: u16 },
    #[error("size {size} leaves no room for the 4-byte access mask")]
    NoMask { size: u16 },
    #[error("size {size} leaves no room for the 4-byte object flags")]
    NoObjectFlags { size: u16 },
    #[error("object flags {flags:#x} announce {which} GUID but size {size} leaves no room for it")]
    NoGuid {
        flags: u32,
        which: &'static str,
        size: u16,
    },
    #[error("trustee SID at ACE offset {at:#x}: {source}")]
    Sid { at: usize, source: SidError },
}

/// Why bytes are not a self-relative security descriptor, or why one cannot be
/// encoded. Offsets are from the start of the descriptor; ACEs count from 0.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SdError {
    #[error("security descriptor is {len} bytes, needs at least 20 for its header")]
    TooShort { len: usize },
    #[error("security descriptor revision is {revision}, expected 1")]
    BadRevision { revision: u8 },
    #[error("{part} offset {offset:#x} points into the 20-byte descriptor header")]
    OffsetInHeader { part: &'static str, offset: u32 },
    #[error("{part} offset {offset:#x} is past the end of the {len}-byte descriptor")]
    OffsetPastEnd {
        part: &'static str,
        offset: u32,
        len: usize,
    },
    #[error("{part} SID at offset {offset:#x}: {source}")]
    Sid {
        part: &'static str,
        offset: usize,
        source: SidError,
    },
    #[error("{acl} at offset {offset:#x}: needs 8 bytes for its header, only {available} left")]
    AclHeader {
        acl: &'static str,
        offset: usize,
        available: usize,
    },
    #[error("{acl} at offset {offset:#x}: revision {revision}, expected 2 or 4")]
    AclRevision {
        acl: &'static str,
        offset: usize,
        revision: u8,
    },
    #[error("{acl} at offset {offset:#x}: size {size} is smaller than its 8-byte header")]
    AclSizeTooSmall {
        acl: &'static str,
        offset: usize,
        size: u16,
    },
    #[error(
        "{acl} at offset {offset:#x}: size {size} runs past the end of the descriptor ({available} bytes left)"
    )]
    AclPastEnd {
        acl: &'static str,
        offset: usize,
        size: u16,
        available: usize,
    },
    #[error("{acl} ACE {index} at offset {offset:#x}: {problem}")]
    Ace {
        acl: &'static str,
        index: usize,
        offset: usize,
        problem: AceProblem,
    },
    #[error("{what} would be {size} bytes, more than the 65535 its 16-bit size field can hold")]
    TooLarge { what: String, size: usize },
}

/// Little-endian readers over slices whose length the caller has checked.
fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl SecurityDescriptor {
    /// Decodes a self-relative security descriptor ([MS-DTYP] 2.4.6), such as the
    /// value of `nTSecurityDescriptor`.
    ///
    /// The DACL is read only when DACL_PRESENT is set and its offset is not 0 (a
    /// NULL DACL reads as `None`, which grants the same); likewise the SACL. Bytes
    /// after the last ACE of an ACL, and after the SID of an ACE of a known type, are
    /// ignored.
    pub fn from_bytes(b: &[u8]) -> Result<Self, SdError> {
        if b.len() < SD_HEADER_LEN {
            return Err(SdError::TooShort { len: b.len() });
        }
        if b[0] != SD_REVISION {
            return Err(SdError::BadRevision { revision: b[0] });
        }
        let raw_control = u16_at(b, 2);
        let owner = read_sid_at(b, "owner", u32_at(b, 4))?;
        let group = read_sid_at(b, "group", u32_at(b, 8))?;
        let sacl = match (raw_control & control::SACL_PRESENT, u32_at(b, 12)) {
            (0, _) | (_, 0) => None,
            (_, offset) => Some(read_acl_at(b, "SACL", offset)?),
        };
        let dacl = match (raw_control & control::DACL_PRESENT, u32_at(b, 16)) {
            (0, _) | (_, 0) => None,
            (_, offset) => Some(read_acl_at(b, "DACL", offset)?),
        };
        let mut sd = SecurityDescriptor {
            control: raw_control,
            owner,
            group,
            sacl,
            dacl,
        };
        sd.control = sd.normalized_control();
        Ok(sd)
    }

    /// Encodes the descriptor in self-relative form: header, SACL, DACL, owner,
    /// group (the order Windows uses).
    ///
    /// # Panics
    /// If an ACL or ACE is too large for its 16-bit size field (more than 65535
    /// bytes). Decoded descriptors and those from [`super::sddl::parse_sddl`] never
    /// are; use [`SecurityDescriptor::try_to_bytes`] for values built otherwise.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self.try_to_bytes() {
            Ok(bytes) => bytes,
            Err(e) => panic!("cannot encode security descriptor: {e}"),
        }
    }

    /// Like [`SecurityDescriptor::to_bytes`], with an error for an ACL or ACE larger
    /// than 65535 bytes.
    pub fn try_to_bytes(&self) -> Result<Vec<u8>, SdError> {
        let mut out = vec![0; SD_HEADER_LEN];
        out[0] = SD_REVISION;
        out[2..4].copy_from_slice(&self.normalized_control().to_le_bytes());
        // Appends a part and writes its offset into the header field at `field`.
        let place = |out: &mut Vec<u8>, field: usize, part: Vec<u8>| -> Result<(), SdError> {
            let offset = u32::try_from(out.len()).map_err(|_| SdError::TooLarge {
                what: "security descriptor".to_string(),
                size: out.len(),
            })?;
            out[field..field + 4].copy_from_slice(&offset.to_le_bytes());
            out.extend_from_slice(&part);
            Ok(())
        };
        if let Some(sacl) = &self.sacl {
            place(&mut out, 12, sacl.encode("SACL")?)?;
        }
        if let Some(dacl) = &self.dacl {
            place(&mut out, 16, dacl.encode("DACL")?)?;
        }
        if let Some(owner) = &self.owner {
            place(&mut out, 4, owner.to_bytes())?;
        }
        if let Some(group) = &self.group {
            place(&mut out, 8, group.to_bytes())?;
        }
        Ok(out)
    }

    /// `control` with SELF_RELATIVE set and DACL_PRESENT / SACL_PRESENT matching
    /// the ACLs: the value `from_bytes` yields and `to_bytes` writes.
    pub fn normalized_control(&self) -> u16 {
        let mut c = self.control | control::SELF_RELATIVE;
        c &= !(control::DACL_PRESENT | control::SACL_PRESENT);
        if self.dacl.is_some() {
            c |= control::DACL_PRESENT;
        }
        if self.sacl.is_some() {
            c |= control::SACL_PRESENT;
        }
        c
    }
}

/// Checks a header offset field: 0 means absent, otherwise it must point behind the
/// header and inside the descriptor.
fn check_offset(b: &[u8], part: &'static str, offset: u32) -> Result<Option<usize>, SdError> {
    if offset == 0 {
        return Ok(None);
    }
    let at = offset as usize;
    if at < SD_HEADER_LEN {
        return Err(SdError::OffsetInHeader { part, offset });
    }
    if at >= b.len() {
        return Err(SdError::OffsetPastEnd {
            part,
            offset,
            len: b.len(),
        });
    }
    Ok(Some(at))
}

fn read_sid_at(b: &[u8], part: &'static str, offset: u32) -> Result<Option<Sid>, SdError> {
    let Some(at) = check_offset(b, part, offset)? else {
        return Ok(None);
    };
    Sid::read(&b[at..])
        .map(|(sid, _)| Some(sid))
        .map_err(|source| SdError::Sid {
            part,
            offset: at,
            source,
        })
}

/// Decodes the ACL at `offset` ([MS-DTYP] 2.4.5).
fn read_acl_at(b: &[u8], which: &'static str, offset: u32) -> Result<Acl, SdError> {
    let Some(start) = check_offset(b, which, offset)? else {
        // The caller passes only non-zero offsets; an empty ACL (which grants
        // nothing) would be the safe answer anyway.
        return Ok(Acl::new(Vec::new()));
    };
    let rest = &b[start..];
    if rest.len() < ACL_HEADER_LEN {
        return Err(SdError::AclHeader {
            acl: which,
            offset: start,
            available: rest.len(),
        });
    }
    let revision = rest[0];
    if revision != ACL_REVISION && revision != ACL_REVISION_DS {
        return Err(SdError::AclRevision {
            acl: which,
            offset: start,
            revision,
        });
    }
    let acl_size = u16_at(rest, 2);
    let count = u16_at(rest, 4);
    let size = usize::from(acl_size);
    if size < ACL_HEADER_LEN {
        return Err(SdError::AclSizeTooSmall {
            acl: which,
            offset: start,
            size: acl_size,
        });
    }
    if size > rest.len() {
        return Err(SdError::AclPastEnd {
            acl: which,
            offset: start,
            size: acl_size,
            available: rest.len(),
        });
    }
    let acl = &rest[..size];
    let mut aces = Vec::with_capacity(usize::from(count).min(size / ACE_HEADER_LEN));
    let mut pos = ACL_HEADER_LEN;
    for index in 0..usize::from(count) {
        let fail = |problem| SdError::Ace {
            acl: which,
            index,
            offset: start + pos,
            problem,
        };
        if pos + ACE_HEADER_LEN > size {
            return Err(fail(AceProblem::MissingHeader { count, acl_size }));
        }
        let ace_size = u16_at(acl, pos + 2);
        let len = usize::from(ace_size);
        if len < ACE_HEADER_LEN {
            return Err(fail(AceProblem::SizeTooSmall { size: ace_size }));
        }
        if len % 4 != 0 {
            return Err(fail(AceProblem::SizeNotAligned { size: ace_size }));
        }
        if pos + len > size {
            return Err(fail(AceProblem::SizePastAclEnd {
                size: ace_size,
                acl_size,
            }));
        }
        let ace = decode_ace(&acl[pos..pos + len]).map_err(fail)?;
        aces.push(ace);
        pos += len;
    }
    let mut acl = Acl { revision, aces };
    // Windows requires revision 4 for object ACEs; tolerate a 2 but report the
    // revision the ACL needs, which is also the one the encoder writes.
    acl.revision = acl.encoded_revision();
    Ok(acl)
}

/// Mask, object types and SID of an ACE body laid out as `object` says.
struct Body {
    mask: u32,
    object_type: Option<Guid>,
    inherited_object_type: Option<Guid>,
    sid: Sid,
}

/// Decodes one ACE whose bytes (header included) are exactly `ace`, with a size
/// already checked to be at least 4 and a multiple of 4.
fn decode_ace(ace: &[u8]) -> Result<Ace, AceProblem> {
    let ace_type = AceType::from_u8(ace[0]);
    let flags = ace[1];
    let size = u16::try_from(ace.len()).unwrap_or(u16::MAX);
    let body = &ace[ACE_HEADER_LEN..];
    let (parsed, raw) = match ace_type {
        AceType::Other(_) => {
            // Not ours to interpret: keep the bytes; show what can be read.
            let parsed = decode_body(body, ace_type.is_object(), size).unwrap_or_else(|_| Body {
                mask: body.get(..4).map_or(0, |m| u32_at(m, 0)),
                object_type: None,
                inherited_object_type: None,
                sid: Sid::new(0, &[0]),
            });
            (parsed, Some(body.to_vec()))
        }
        _ => (decode_body(body, ace_type.is_object(), size)?, None),
    };
    Ok(Ace {
        ace_type,
        flags,
        mask: parsed.mask,
        object_type: parsed.object_type,
        inherited_object_type: parsed.inherited_object_type,
        sid: parsed.sid,
        raw,
    })
}

/// Decodes an ACE body (after the header): [MS-DTYP] 2.4.4.2 (mask, SID) or, for
/// object ACEs, 2.4.4.3 (mask, flags, optional GUIDs, SID). `size` is the ACE size
/// for error messages; offsets in errors are from the start of the ACE.
fn decode_body(body: &[u8], object: bool, size: u16) -> Result<Body, AceProblem> {
    if body.len() < 4 {
        return Err(AceProblem::NoMask { size });
    }
    let mask = u32_at(body, 0);
    let mut pos = 4;
    let mut object_type = None;
    let mut inherited_object_type = None;
    if object {
        if body.len() < pos + 4 {
            return Err(AceProblem::NoObjectFlags { size });
        }
        let object_flags = u32_at(body, pos);
        pos += 4;
        for (bit, which, slot) in [
            (ACE_OBJECT_TYPE_PRESENT, "an ObjectType", &mut object_type),
            (
                ACE_INHERITED_OBJECT_TYPE_PRESENT,
                "an InheritedObjectType",
                &mut inherited_object_type,
            ),
        ] {
            if object_flags & bit != 0 {
                let guid = body
                    .get(pos..pos + 16)
                    .and_then(|g| Guid::from_bytes(g).ok())
                    .ok_or(AceProblem::NoGuid {
                        flags: object_flags,
                        which,
                        size,
                    })?;
                *slot = Some(guid);
                pos += 16;
            }
        }
    }
    let (sid, _) = Sid::read(&body[pos..]).map_err(|source| AceProblem::Sid {
        at: ACE_HEADER_LEN + pos,
        source,
    })?;
    Ok(Body {
        mask,
        object_type,
        inherited_object_type,
        sid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn domain_computers() -> Sid {
        "S-1-5-21-1000-2000-3000-515".parse().unwrap()
    }

    fn domain_admins() -> Sid {
        "S-1-5-21-1000-2000-3000-512".parse().unwrap()
    }

    /// A descriptor written out by hand from [MS-DTYP] 2.4.6 / 2.4.5 / 2.4.4.3:
    /// owner Domain Admins, group Domain Admins, a DACL with one
    /// ACCESS_ALLOWED_OBJECT_ACE granting Enroll (CR) to Domain Computers.
    #[rustfmt::skip]
    const HAND_BUILT: [u8; 140] = [
        // 0x00 SECURITY_DESCRIPTOR
        0x01,                   // Revision 1
        0x00,                   // Sbz1
        0x04, 0x94,             // Control 0x9404: SR | PD | DI | DP
        0x54, 0x00, 0x00, 0x00, // OffsetOwner 0x54
        0x70, 0x00, 0x00, 0x00, // OffsetGroup 0x70
        0x00, 0x00, 0x00, 0x00, // OffsetSacl 0 (none)
        0x14, 0x00, 0x00, 0x00, // OffsetDacl 0x14
        // 0x14 ACL
        0x04,                   // AclRevision 4 (ACL_REVISION_DS)
        0x00,                   // Sbz1
        0x40, 0x00,             // AclSize 64
        0x01, 0x00,             // AceCount 1
        0x00, 0x00,             // Sbz2
        // 0x1c ACCESS_ALLOWED_OBJECT_ACE
        0x05,                   // AceType 5
        0x00,                   // AceFlags
        0x38, 0x00,             // AceSize 56
        0x00, 0x01, 0x00, 0x00, // Mask 0x100 (control access)
        0x01, 0x00, 0x00, 0x00, // Flags: ACE_OBJECT_TYPE_PRESENT
        // ObjectType 0e10c968-78fb-11d2-90d4-00c04f79dc55 (Enroll)
        0x68, 0xc9, 0x10, 0x0e, 0xfb, 0x78, 0xd2, 0x11,
        0x90, 0xd4, 0x00, 0xc0, 0x4f, 0x79, 0xdc, 0x55,
        // SID S-1-5-21-1000-2000-3000-515
        0x01, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05,
        0x15, 0x00, 0x00, 0x00, 0xe8, 0x03, 0x00, 0x00,
        0xd0, 0x07, 0x00, 0x00, 0xb8, 0x0b, 0x00, 0x00,
        0x03, 0x02, 0x00, 0x00,
        // 0x54 owner S-1-5-21-1000-2000-3000-512
        0x01, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05,
        0x15, 0x00, 0x00, 0x00, 0xe8, 0x03, 0x00, 0x00,
        0xd0, 0x07, 0x00, 0x00, 0xb8, 0x0b, 0x00, 0x00,
        0x00, 0x02, 0x00, 0x00,
        // 0x70 group S-1-5-21-1000-2000-3000-512
        0x01, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05,
        0x15, 0x00, 0x00, 0x00, 0xe8, 0x03, 0x00, 0x00,
        0xd0, 0x07, 0x00, 0x00, 0xb8, 0x0b, 0x00, 0x00,
        0x00, 0x02, 0x00, 0x00,
    ];

    fn hand_built_expected() -> SecurityDescriptor {
        SecurityDescriptor {
            control: 0x9404,
            owner: Some(domain_admins()),
            group: Some(domain_admins()),
            sacl: None,
            dacl: Some(Acl {
                revision: 4,
                aces: vec![Ace::allowed_object(
                    domain_computers(),
                    rights::CONTROL_ACCESS,
                    Some(Guid::ENROLL),
                )],
            }),
        }
    }

    /// A richer descriptor: SACL, inherited and inherit-only ACEs, both GUIDs.
    fn rich() -> SecurityDescriptor {
        let everyone = Sid::everyone();
        SecurityDescriptor {
            control: control::SELF_RELATIVE
                | control::DACL_PRESENT
                | control::SACL_PRESENT
                | control::DACL_AUTO_INHERITED,
            owner: Some(domain_admins()),
            group: None,
            sacl: Some(Acl::new(vec![Ace {
                ace_type: AceType::SystemAudit,
                flags: ace_flags::FAILED_ACCESS | ace_flags::SUCCESSFUL_ACCESS,
                mask: rights::WRITE_PROPERTY,
                object_type: None,
                inherited_object_type: None,
                sid: everyone.clone(),
                raw: None,
            }])),
            dacl: Some(Acl::new(vec![
                Ace::denied_object(
                    everyone.clone(),
                    rights::CONTROL_ACCESS,
                    Some(Guid::AUTOENROLL),
                ),
                Ace {
                    inherited_object_type: Some(Guid::ENROLL),
                    ..Ace::allowed_object(domain_computers(), 0x130, Some(Guid::AUTOENROLL))
                }
                .with_flags(ace_flags::CONTAINER_INHERIT | ace_flags::INHERITED),
                Ace::allowed(Sid::authenticated_users(), 0x20094),
                Ace::allowed(domain_admins(), rights::FULL_CONTROL)
                    .with_flags(ace_flags::INHERIT_ONLY | ace_flags::OBJECT_INHERIT),
            ])),
        }
    }

    #[test]
    fn decodes_hand_built_descriptor() {
        let sd = SecurityDescriptor::from_bytes(&HAND_BUILT).unwrap();
        assert_eq!(sd, hand_built_expected());
    }

    #[test]
    fn encodes_hand_built_descriptor_byte_for_byte() {
        assert_eq!(hand_built_expected().to_bytes(), HAND_BUILT);
    }

    #[test]
    fn encode_round_trip() {
        let sd = rich();
        let bytes = sd.to_bytes();
        assert_eq!(SecurityDescriptor::from_bytes(&bytes).unwrap(), sd);
        // DACL revision 4 because of the object ACEs; SACL keeps 2.
        let decoded = SecurityDescriptor::from_bytes(&bytes).unwrap();
        assert_eq!(decoded.dacl.unwrap().revision, 4);
        assert_eq!(decoded.sacl.unwrap().revision, 2);
    }

    #[test]
    fn encoder_sets_present_bits_from_the_acls() {
        let sd = SecurityDescriptor {
            control: control::DACL_PRESENT | control::SACL_PRESENT | control::DACL_PROTECTED,
            owner: None,
            group: None,
            sacl: None,
            dacl: None,
        };
        let bytes = sd.to_bytes();
        assert_eq!(bytes.len(), 20);
        assert_eq!(
            u16_at(&bytes, 2),
            control::SELF_RELATIVE | control::DACL_PROTECTED
        );
        let decoded = SecurityDescriptor::from_bytes(&bytes).unwrap();
        assert_eq!(decoded.dacl, None);
        assert_eq!(decoded.control, 0x9000);

        let empty = SecurityDescriptor {
            control: 0,
            dacl: Some(Acl::new(vec![])),
            ..sd
        };
        let bytes = empty.to_bytes();
        assert_eq!(u16_at(&bytes, 2), 0x8004);
        assert_eq!(&bytes[20..], [2, 0, 8, 0, 0, 0, 0, 0]);
        let decoded = SecurityDescriptor::from_bytes(&bytes).unwrap();
        assert_eq!(decoded.dacl, Some(Acl::new(vec![])));
    }

    #[test]
    fn null_dacl_and_ignored_dacl() {
        // DACL_PRESENT with offset 0: a NULL DACL, read as no DACL.
        let mut b = HAND_BUILT;
        b[16..20].copy_from_slice(&[0; 4]);
        assert_eq!(SecurityDescriptor::from_bytes(&b).unwrap().dacl, None);
        // An offset without DACL_PRESENT is ignored.
        let mut b = HAND_BUILT;
        b[2] = 0x00;
        let sd = SecurityDescriptor::from_bytes(&b).unwrap();
        assert_eq!(sd.dacl, None);
        assert_eq!(sd.control, 0x9400);
    }

    #[test]
    fn object_aces_in_a_revision_2_acl_are_tolerated() {
        let mut b = HAND_BUILT;
        b[0x14] = 2;
        let sd = SecurityDescriptor::from_bytes(&b).unwrap();
        assert_eq!(sd, hand_built_expected());
        assert_eq!(sd.to_bytes(), HAND_BUILT);
    }

    #[test]
    fn unknown_ace_types_survive_byte_for_byte() {
        // ACCESS_ALLOWED_CALLBACK_ACE (0x09): mask, SID, then application data.
        let mut callback = vec![0x09, 0x00, 0x00, 0x00];
        callback.extend_from_slice(&0x100u32.to_le_bytes());
        callback.extend_from_slice(&domain_computers().to_bytes());
        callback.extend_from_slice(b"artx\x01\x02\x03\x04");
        let size = callback.len() as u16;
        callback[2..4].copy_from_slice(&size.to_le_bytes());
        // A type-0x42 ACE of 8 bytes whose body is not even a SID.
        let odd = [0x42, 0x10, 0x08, 0x00, 0xde, 0xad, 0xbe, 0xef];

        let mut acl = vec![2, 0, 0, 0, 2, 0, 0, 0];
        acl.extend_from_slice(&callback);
        acl.extend_from_slice(&odd);
        let acl_size = acl.len() as u16;
        acl[2..4].copy_from_slice(&acl_size.to_le_bytes());
        let mut bytes = vec![
            1, 0, 0x04, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0,
        ];
        bytes.extend_from_slice(&acl);

        let sd = SecurityDescriptor::from_bytes(&bytes).unwrap();
        let aces = &sd.dacl.as_ref().unwrap().aces;
        assert_eq!(aces[0].ace_type, AceType::Other(0x09));
        assert_eq!(aces[0].mask, 0x100);
        assert_eq!(aces[0].sid, domain_computers());
        assert_eq!(aces[1].ace_type, AceType::Other(0x42));
        assert_eq!(aces[1].flags, 0x10);
        assert_eq!(aces[1].sid, Sid::new(0, &[0]));
        assert_eq!(aces[1].raw.as_deref(), Some(&[0xde, 0xad, 0xbe, 0xef][..]));
        assert_eq!(sd.to_bytes(), bytes);
    }

    #[test]
    fn truncated_at_every_length_is_an_error() {
        for len in 0..HAND_BUILT.len() {
            assert!(
                SecurityDescriptor::from_bytes(&HAND_BUILT[..len]).is_err(),
                "accepted {len} bytes"
            );
        }
        let rich = rich().to_bytes();
        for len in 0..rich.len() {
            assert!(SecurityDescriptor::from_bytes(&rich[..len]).is_err());
        }
    }

    #[test]
    fn malformed_descriptors() {
        let err = |b: &[u8]| SecurityDescriptor::from_bytes(b).unwrap_err();

        assert_eq!(
            err(&HAND_BUILT[..19]).to_string(),
            "security descriptor is 19 bytes, needs at least 20 for its header"
        );
        let mut b = HAND_BUILT;
        b[0] = 2;
        assert_eq!(err(&b), SdError::BadRevision { revision: 2 });

        // Owner offset past the end, into the header, group SID cut short.
        let mut b = HAND_BUILT;
        b[4..8].copy_from_slice(&0x1000u32.to_le_bytes());
        assert_eq!(
            err(&b).to_string(),
            "owner offset 0x1000 is past the end of the 140-byte descriptor"
        );
        let mut b = HAND_BUILT;
        b[8..12].copy_from_slice(&4u32.to_le_bytes());
        assert_eq!(
            err(&b),
            SdError::OffsetInHeader {
                part: "group",
                offset: 4
            }
        );
        let mut b = HAND_BUILT;
        b[8..12].copy_from_slice(&0x88u32.to_le_bytes());
        assert!(matches!(
            err(&b),
            SdError::Sid {
                part: "group",
                offset: 0x88,
                source: SidError::TooShort { len: 4 }
            }
        ));
        let mut b = HAND_BUILT;
        b[16..20].copy_from_slice(&0x88u32.to_le_bytes());
        assert_eq!(
            err(&b),
            SdError::AclHeader {
                acl: "DACL",
                offset: 0x88,
                available: 4
            }
        );

        // ACL revision 3.
        let mut b = HAND_BUILT;
        b[0x14] = 3;
        assert_eq!(
            err(&b).to_string(),
            "DACL at offset 0x14: revision 3, expected 2 or 4"
        );
        // ACL size smaller than its header, and larger than what is there.
        let mut b = HAND_BUILT;
        b[0x16] = 4;
        assert!(matches!(err(&b), SdError::AclSizeTooSmall { size: 4, .. }));
        let mut b = HAND_BUILT;
        b[0x16..0x18].copy_from_slice(&200u16.to_le_bytes());
        assert_eq!(
            err(&b).to_string(),
            "DACL at offset 0x14: size 200 runs past the end of the descriptor (120 bytes left)"
        );

        // ACE count larger than present.
        let mut b = HAND_BUILT;
        b[0x18] = 2;
        assert_eq!(
            err(&b).to_string(),
            "DACL ACE 1 at offset 0x54: the ACL announces 2 ACEs but ends (size 64) before this ACE's 4-byte header"
        );
        // ACE size 0, not a multiple of 4, past the ACL end, too small for its body.
        let mut b = HAND_BUILT;
        b[0x1e] = 0;
        assert_eq!(
            err(&b).to_string(),
            "DACL ACE 0 at offset 0x1c: size 0 is smaller than the 4-byte ACE header"
        );
        let mut b = HAND_BUILT;
        b[0x1e] = 46;
        assert!(matches!(
            err(&b),
            SdError::Ace {
                problem: AceProblem::SizeNotAligned { size: 46 },
                ..
            }
        ));
        let mut b = HAND_BUILT;
        b[0x1e] = 60;
        assert_eq!(
            err(&b).to_string(),
            "DACL ACE 0 at offset 0x1c: size 60 runs past the ACL end (size 64)"
        );
        let mut b = HAND_BUILT;
        b[0x1e] = 24;
        assert!(matches!(
            err(&b),
            SdError::Ace {
                problem: AceProblem::NoGuid { flags: 1, .. },
                ..
            }
        ));
        let mut b = HAND_BUILT;
        b[0x1e] = 52;
        assert!(matches!(
            err(&b),
            SdError::Ace {
                problem: AceProblem::Sid {
                    at: 0x1c,
                    source: SidError::Truncated { .. }
                },
                ..
            }
        ));
        let mut b = HAND_BUILT;
        b[0x1e] = 4;
        assert!(matches!(
            err(&b),
            SdError::Ace {
                problem: AceProblem::NoMask { size: 4 },
                ..
            }
        ));
        // SID with 16 sub-authorities inside the ACE.
        let mut b = HAND_BUILT;
        b[0x39] = 16;
        assert!(matches!(
            err(&b),
            SdError::Ace {
                problem: AceProblem::Sid {
                    source: SidError::TooManySubAuthorities { count: 16 },
                    ..
                },
                ..
            }
        ));
    }

    #[test]
    fn oversized_acl_is_an_encode_error() {
        let aces = vec![Ace::allowed(domain_computers(), 1); 2500];
        let sd = SecurityDescriptor {
            control: 0,
            owner: None,
            group: None,
            sacl: None,
            dacl: Some(Acl::new(aces)),
        };
        assert!(matches!(sd.try_to_bytes(), Err(SdError::TooLarge { .. })));
    }

    fn any_sid() -> impl Strategy<Value = Sid> {
        (0u64..10, proptest::collection::vec(any::<u32>(), 0..=15))
            .prop_map(|(a, subs)| Sid::new(a, &subs))
    }

    fn any_guid() -> impl Strategy<Value = Option<Guid>> {
        proptest::option::of(any::<[u8; 16]>().prop_map(|b| Guid::from_bytes(&b).unwrap()))
    }

    fn any_ace() -> impl Strategy<Value = Ace> {
        (
            prop_oneof![
                Just(AceType::AccessAllowed),
                Just(AceType::AccessDenied),
                Just(AceType::SystemAudit),
                Just(AceType::AccessAllowedObject),
                Just(AceType::AccessDeniedObject),
                Just(AceType::SystemAuditObject),
            ],
            any::<u8>(),
            any::<u32>(),
            any_guid(),
            any_guid(),
            any_sid(),
        )
            .prop_map(|(ace_type, flags, mask, ot, iot, sid)| {
                let object = ace_type.is_object();
                Ace {
                    ace_type,
                    flags,
                    mask,
                    object_type: ot.filter(|_| object),
                    inherited_object_type: iot.filter(|_| object),
                    sid,
                    raw: None,
                }
            })
    }

    fn any_acl() -> impl Strategy<Value = Acl> {
        proptest::collection::vec(any_ace(), 0..6).prop_map(Acl::new)
    }

    fn any_sd() -> impl Strategy<Value = SecurityDescriptor> {
        (
            any::<u16>(),
            proptest::option::of(any_sid()),
            proptest::option::of(any_sid()),
            proptest::option::of(any_acl()),
            proptest::option::of(any_acl()),
        )
            .prop_map(|(control, owner, group, sacl, dacl)| {
                let mut sd = SecurityDescriptor {
                    control,
                    owner,
                    group,
                    sacl,
                    dacl,
                };
                sd.control = sd.normalized_control();
                sd
            })
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = SecurityDescriptor::from_bytes(&bytes);
        }

        #[test]
        fn mutated_descriptors_never_panic(
            edits in proptest::collection::vec((0..HAND_BUILT.len(), any::<u8>()), 1..6),
        ) {
            let mut b = HAND_BUILT;
            for (at, value) in edits {
                b[at] = value;
            }
            if let Ok(sd) = SecurityDescriptor::from_bytes(&b) {
                // Whatever decodes re-encodes to something that decodes the same.
                prop_assert_eq!(SecurityDescriptor::from_bytes(&sd.to_bytes()), Ok(sd));
            }
        }

        #[test]
        fn descriptors_round_trip(sd in any_sd()) {
            prop_assert_eq!(SecurityDescriptor::from_bytes(&sd.to_bytes()), Ok(sd));
        }
    }
}
