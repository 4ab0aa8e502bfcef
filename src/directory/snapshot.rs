//! A directory snapshot: everything one pulse needs from the directory, read in
//! a fixed number of searches whatever the number of templates:
//!
//! 1. the rootDSE (naming contexts; the Configuration DN is never derived);
//! 2. the account, by a base search on its DN (one more search first when the
//!    policy names it by `sAMAccountName`, UPN or implicit UPN, two for
//!    `DOMAIN\name`, whose NetBIOS domain name is read from its crossRef);
//! 3. the names and SIDs of its groups (skipped when it has none);
//! 4. all of `CN=Public Key Services`: templates, enrollment services, roots,
//!    NTAuth, AIA and CDP objects in one paged subtree search.
//!
//! Step 4 is the one whose cost grows with the template count. A reader that
//! keeps its reads (the pulse, in the store's saved snapshot) also gets the
//! markers they were made at ([`PksMarkers`]): the server's database-wide
//! change value ([`super::server_marker`]: AD's comes with the rootDSE of
//! step 1, slapd's takes one base search), read before the rest, and the
//! change marker of Public Key Services, computed from step 4's own entries.
//! Offered such a read, a later one skips step 4 while the server's value
//! has not moved, or else while the change marker (one search of three
//! small attributes per object, [`Directory::change_marker`]) has not.

use std::collections::BTreeMap;
use std::sync::Arc;

use ldap3::Scope;

use super::connection::{Directory, DirectoryError};
use super::entry::{AttrError, Entry, escape_bytes};
use super::saved::SavedSnapshot;
use super::sd::SecurityDescriptor;
use crate::model::template::EnrollmentServer;
use crate::model::{
    Account, EnrollmentFlags, EnrollmentService, GeneralFlags, NameFlags, PrivateKeyFlags, Sid,
    Template, Token,
};

/// Where the directory keeps things ([MS-ADTS] 3.1.1.3.2, adcs.md section 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamingContexts {
    pub default: String,
    pub configuration: String,
}

impl NamingContexts {
    /// `CN=Public Key Services,CN=Services,<configuration>`.
    pub fn public_key_services(&self) -> String {
        format!("CN=Public Key Services,CN=Services,{}", self.configuration)
    }
}

/// A template with the security descriptor that decides who may enroll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateEntry {
    pub template: Template,
    pub security: SecurityDescriptor,
}

/// A template entry with a value that could not be decoded. It is reported,
/// never judged, and never taken as "no template".
///
/// Its `msPKI-Supersede-Templates` is read apart from the rest, value by value,
/// so that one bad `flags` holds back only the templates it names rather than
/// every new enrollment (see `eligibility`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnusableTemplate {
    pub dn: String,
    pub cn: Option<String>,
    pub problem: String,
    /// The values of `msPKI-Supersede-Templates` that could be decoded.
    pub supersedes: Vec<String>,
    /// Why `msPKI-Supersede-Templates` could not be read in full ("attribute:
    /// problem"); None when every value was read (or it is absent).
    pub supersedes_problem: Option<String>,
}

impl UnusableTemplate {
    /// The entry, with what could still be read of it, given why it is unusable.
    pub fn from_entry(entry: &Entry, problem: String) -> Self {
        let (supersedes, supersedes_problem) = readable_strings(entry, "msPKI-Supersede-Templates");
        UnusableTemplate {
            dn: entry.dn.clone(),
            cn: entry.strings("cn").ok().and_then(|v| v.into_iter().next()),
            problem,
            supersedes,
            supersedes_problem,
        }
    }

    /// Whether the whole supersede list is known: its cn and every value of
    /// `msPKI-Supersede-Templates` were read.
    pub fn supersedes_known(&self) -> bool {
        self.cn.is_some() && self.supersedes_problem.is_none()
    }
}

/// Best effort: the values of a string attribute that decode, and the first
/// problem with the others.
fn readable_strings(entry: &Entry, name: &str) -> (Vec<String>, Option<String>) {
    let mut values = Vec::new();
    let mut problem = None;
    for (i, b) in entry.values(name).iter().enumerate() {
        match std::str::from_utf8(b) {
            Ok(v) => values.push(v.to_string()),
            Err(e) => {
                problem.get_or_insert_with(|| {
                    format!(
                        "{name}: value {} is not UTF-8 text (invalid byte at offset {})",
                        i + 1,
                        e.valid_up_to()
                    )
                });
            }
        }
    }
    (values, problem)
}

/// A CRL distribution point object with its CRLs (DER).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlObject {
    pub dn: String,
    pub base: Vec<Vec<u8>>,
    pub delta: Vec<Vec<u8>>,
}

/// What the directory says, at one moment.
#[derive(Debug, Clone)]
pub struct DirectorySnapshot {
    pub naming: NamingContexts,
    pub account: Account,
    pub templates: Vec<TemplateEntry>,
    pub unusable: Vec<UnusableTemplate>,
    pub services: Vec<EnrollmentService>,
    /// `cACertificate` of the objects under Certification Authorities.
    pub roots: Vec<Vec<u8>>,
    /// `cACertificate` of NTAuthCertificates.
    pub ntauth: Vec<Vec<u8>>,
    /// `cACertificate` of the objects under AIA (intermediates).
    pub aia: Vec<Vec<u8>>,
    pub crls: Vec<CrlObject>,
    /// Problems with objects other than templates (a CA entry with a bad value).
    pub warnings: Vec<String>,
    /// Names of the SIDs seen in the token, for messages ("Contractors").
    pub sid_names: BTreeMap<Sid, String>,
}

impl DirectorySnapshot {
    /// A person-readable name for a SID: `Contractors (S-1-5-21-...-1103)`.
    pub fn describe_sid(&self, sid: &Sid) -> String {
        match self.sid_names.get(sid) {
            Some(name) => format!("{name} ({sid})"),
            None => sid.to_string(),
        }
    }
}

pub(super) const ACCOUNT_ATTRS: [&str; 12] = [
    "objectClass",
    "objectSid",
    "primaryGroupID",
    "sAMAccountName",
    "dNSHostName",
    "userPrincipalName",
    "mail",
    "userCertificate",
    "memberOf",
    "tokenGroups",
    "sIDHistory",
    "cn",
];

/// Where Public Key Services stood when it was read, from the markers read
/// just before it: the server's database-wide change value when it shows
/// one, and the change marker of Public Key Services itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PksMarkers {
    pub server: Option<String>,
    pub pks: String,
}

/// What [`Directory::snapshot_with_entries`] read.
#[derive(Debug)]
pub struct SnapshotRead {
    pub snapshot: DirectorySnapshot,
    pub raw: RawSnapshot,
    /// The markers `raw.entries` were read at (an earlier read's, when
    /// `reused`); None for a read made without them ([`Directory::snapshot`]).
    pub markers: Option<PksMarkers>,
    /// Whether the Public Key Services entries are an earlier read's, found
    /// current by its markers, rather than searched for now.
    pub reused: bool,
}

/// Whether an earlier read of Public Key Services, made at `earlier`, still
/// stands, given the server's change value `server_now`.
#[derive(Debug, PartialEq, Eq)]
pub enum Reuse<'a> {
    /// The server's database-wide change value is the one read before the
    /// earlier read: nothing at all was written since.
    Yes,
    /// The server wrote something (or shows no value): the earlier read
    /// stands if the change marker of Public Key Services is still this.
    IfPksMarkerIs(&'a str),
    /// No markers were kept: read again.
    No,
}

/// See [`Reuse`] (pure: the rule, apart from the reads).
pub fn reuse<'a>(earlier: Option<&'a PksMarkers>, server_now: Option<&str>) -> Reuse<'a> {
    match earlier {
        None => Reuse::No,
        Some(m) => match (m.server.as_deref(), server_now) {
            (Some(then), Some(now)) if then == now => Reuse::Yes,
            _ => Reuse::IfPksMarkerIs(&m.pks),
        },
    }
}

/// What a snapshot reads under Public Key Services (and what its change
/// marker watches): equality on `objectClass`, which directories index.
pub(super) const PKS_FILTER: &str = "(|(objectClass=pKICertificateTemplate)(objectClass=pKIEnrollmentService)(objectClass=certificationAuthority)(objectClass=pkiCA)(objectClass=cRLDistributionPoint))";

impl Directory {
    /// Reads the naming contexts from the rootDSE.
    pub async fn naming_contexts(&mut self) -> Result<NamingContexts, DirectoryError> {
        let root = self.root_dse().await?;
        self.naming_from(&root)
    }

    /// The naming contexts a rootDSE names.
    fn naming_from(&self, root: &Entry) -> Result<NamingContexts, DirectoryError> {
        let get = |name: &str| -> Result<String, DirectoryError> {
            root.strings(name)
                .ok()
                .and_then(|v| v.into_iter().next())
                .ok_or_else(|| DirectoryError::Content {
                    url: self.url().to_string(),
                    what: format!(
                        "the rootDSE has no {name}: not an Active Directory (or emulation) server"
                    ),
                })
        };
        Ok(NamingContexts {
            default: get("defaultNamingContext")?,
            configuration: get("configurationNamingContext")?,
        })
    }

    /// Takes a snapshot for `account` (a DN, `name$`, UPN or `DOMAIN\name`).
    pub async fn snapshot(&mut self, account: &str) -> Result<DirectorySnapshot, DirectoryError> {
        Ok(self.read_snapshot(account, None, false).await?.snapshot)
    }

    /// The snapshot, the entries it was decoded from (which the pulse keeps
    /// in the store for `status` while the directory is unreachable:
    /// [`RawSnapshot::decode`] gives the same snapshot back, through the same
    /// decoders as live data) and the markers Public Key Services was read at.
    ///
    /// `earlier` is a read kept from before (the store's saved snapshot):
    /// its Public Key Services entries are used again, instead of searched
    /// for, when it came from this server, for this account, and
    /// [`reuse`] finds that its markers still stand. The account and its
    /// groups are always read anew.
    pub async fn snapshot_with_entries(
        &mut self,
        account: &str,
        earlier: Option<&SavedSnapshot>,
    ) -> Result<SnapshotRead, DirectoryError> {
        self.read_snapshot(account, earlier, true).await
    }

    /// [`Self::snapshot_with_entries`], or with `markers` false a read kept
    /// by no one ([`Self::snapshot`]): no markers, in the 4 searches of the
    /// module's list.
    async fn read_snapshot(
        &mut self,
        account: &str,
        earlier: Option<&SavedSnapshot>,
        markers: bool,
    ) -> Result<SnapshotRead, DirectoryError> {
        // The markers are read before what they vouch for: a change made
        // during the reads moves them past what was read, and the next
        // pulse reads again.
        let root = self.root_dse().await?;
        let naming = self.naming_from(&root)?;
        let pks = naming.public_key_services();
        let server = match markers {
            true => self.server_marker_after(&root, &pks).await?,
            false => None,
        };
        // A DN is read as it is (the base search below fails clearly if it
        // is no account); any other form is resolved in the domain NC.
        let dn = match super::connection::NameForm::of(account) {
            super::connection::NameForm::Dn => account.to_string(),
            _ => self.resolve_account(account, &naming).await?.dn,
        };
        let (account_entry, groups) = self.read_account(&dn).await?;
        let earlier = earlier.filter(|e| {
            e.url == self.url() && e.raw.naming == naming && e.raw.account.dn == account_entry.dn
        });
        let kept = match earlier.map(|e| (e, reuse(e.markers.as_ref(), server.as_deref()))) {
            Some((e, Reuse::Yes)) => Some(e),
            Some((e, Reuse::IfPksMarkerIs(want))) => {
                (self.change_marker(&pks).await? == want).then_some(e)
            }
            Some((_, Reuse::No)) | None => None,
        };
        let (entries, markers, reused) = match kept {
            Some(e) => (Arc::clone(&e.raw.entries), e.markers.clone(), true),
            None => {
                // The read's own marker (it asks for the marker's
                // attributes): the same as a marker search made with it.
                let entries = self.read_public_key_services(&pks).await?;
                let markers = markers.then(|| PksMarkers {
                    server,
                    pks: super::connection::change_marker_of(&entries),
                });
                (Arc::new(entries), markers, false)
            }
        };
        let raw = RawSnapshot {
            naming,
            account: account_entry,
            groups,
            entries,
        };
        let snapshot = raw.decode().map_err(|what| DirectoryError::Content {
            url: self.url().to_string(),
            what,
        })?;
        Ok(SnapshotRead {
            snapshot,
            raw,
            markers,
            reused,
        })
    }

    /// Every PKI object under Public Key Services, in one paged search, with
    /// the attributes of its change marker.
    async fn read_public_key_services(&mut self, pks: &str) -> Result<Vec<Entry>, DirectoryError> {
        let mut attrs: Vec<&str> = vec!["*", "nTSecurityDescriptor"];
        attrs.extend(TEMPLATE_ATTRS);
        attrs.extend(super::connection::MARKER_ATTRS);
        let entries = self
            .search(pks, Scope::Subtree, PKS_FILTER, &attrs, true)
            .await?;
        if entries.is_empty() {
            // An empty Public Key Services is never "no templates".
            return Err(DirectoryError::Content {
                url: self.url().to_string(),
                what: format!("nothing readable under {pks}: check the bind account's rights"),
            });
        }
        Ok(entries)
    }

    /// The account part of a snapshot (the account, its token and the names
    /// of its groups) without Public Key Services: for a reader that keeps
    /// that part behind a change marker (the CA). `account` in any form
    /// [`Directory::snapshot`] takes.
    ///
    /// `known_names` are group names the reader already holds: a SID of
    /// the token (tokenGroups, the primary group) that it names is not
    /// searched for, since that search would only fetch its name. Groups
    /// named by `memberOf` are always read: their SIDs make the token.
    ///
    /// `entry` is the account's entry when the caller read it already (see
    /// [`super::connection::ResolvedAccount::entry`]); it is then not read
    /// again.
    pub async fn account_view(
        &mut self,
        account: &str,
        naming: &NamingContexts,
        known_names: &BTreeMap<Sid, String>,
        entry: Option<Entry>,
    ) -> Result<(Account, BTreeMap<Sid, String>), DirectoryError> {
        let dn = match super::connection::NameForm::of(account) {
            super::connection::NameForm::Dn => account.to_string(),
            _ => self.resolve_account(account, naming).await?.dn,
        };
        let (entry, groups) = match entry.filter(|e| e.dn == dn) {
            Some(entry) => {
                let groups = self.read_groups(&entry, known_names).await?;
                (entry, groups)
            }
            None => self.read_account_with(&dn, known_names).await?,
        };
        let (account, mut names) =
            account_from_entries(&entry, &groups).map_err(|what| DirectoryError::Content {
                url: self.url().to_string(),
                what,
            })?;
        for sid in account.token.iter() {
            if let Some(name) = known_names.get(sid) {
                names.entry(sid.clone()).or_insert_with(|| name.clone());
            }
        }
        Ok((account, names))
    }

    /// The account's entry and the entries of its groups (names and SIDs).
    async fn read_account(&mut self, dn: &str) -> Result<(Entry, Vec<Entry>), DirectoryError> {
        self.read_account_with(dn, &BTreeMap::new()).await
    }

    /// [`Self::read_account`] without searching for the groups whose SID
    /// `known_names` already names (see [`Self::account_view`]).
    async fn read_account_with(
        &mut self,
        dn: &str,
        known_names: &BTreeMap<Sid, String>,
    ) -> Result<(Entry, Vec<Entry>), DirectoryError> {
        let url = self.url().to_string();
        let content = |what: String| DirectoryError::Content {
            url: url.clone(),
            what,
        };
        let entry = self
            .search(dn, Scope::Base, "(objectClass=*)", &ACCOUNT_ATTRS, false)
            .await?
            .pop()
            .ok_or_else(|| content(format!("account {dn} not found")))?;
        let groups = self.read_groups(&entry, known_names).await?;
        Ok((entry, groups))
    }

    /// The entries of the account's groups (names and SIDs): those its
    /// `memberOf` names, and those of its token's SIDs not in `known_names`.
    async fn read_groups(
        &mut self,
        entry: &Entry,
        known_names: &BTreeMap<Sid, String>,
    ) -> Result<Vec<Entry>, DirectoryError> {
        let dn = entry.dn.as_str();
        let bad = |e: AttrError| DirectoryError::Content {
            url: self.url().to_string(),
            what: format!("account {dn}: {e}"),
        };
        let sid = entry
            .sid("objectSid")
            .map_err(bad)?
            .ok_or_else(|| DirectoryError::Content {
                url: self.url().to_string(),
                what: format!("account {dn} has no objectSid"),
            })?;
        let primary = match (entry.count("primaryGroupID").map_err(bad)?, sid.domain()) {
            (Some(rid), Some(domain)) => Some(domain.with_rid(rid)),
            _ => None,
        };
        // AD computes tokenGroups (transitive, primary group included); other
        // servers give nested memberOf (OpenLDAP's dynlist) resolved below.
        let token_groups = entry.sids("tokenGroups").map_err(bad)?;
        let member_of = entry.strings("memberOf").map_err(bad)?;
        let mut terms: Vec<String> = member_of
            .iter()
            .map(|g| format!("(entryDN={})", ldap3::ldap_escape(g.as_str())))
            .collect();
        for s in token_groups
            .iter()
            .chain(primary.iter())
            .filter(|s| !known_names.contains_key(*s))
        {
            terms.push(format!("(objectSid={})", escape_bytes(&s.to_bytes())));
        }
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let filter = format!("(|{})", terms.concat());
        self.search(
            &dn_domain_root(dn),
            Scope::Subtree,
            &filter,
            &["objectSid", "sAMAccountName", "cn"],
            true,
        )
        .await
    }
}

/// The entries a snapshot is decoded from, as the directory returned them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSnapshot {
    pub naming: NamingContexts,
    /// The account's entry (base search on its DN).
    pub account: Entry,
    /// The entries of its groups (objectSid, sAMAccountName, cn).
    pub groups: Vec<Entry>,
    /// Everything under Public Key Services (shared with the saved snapshot
    /// a later pulse reuses them from).
    pub entries: Arc<Vec<Entry>>,
}

impl RawSnapshot {
    /// The snapshot these entries say (pure; an error names what is wrong
    /// with the account; a bad template or CA entry is reported inside the
    /// snapshot, as for live data).
    pub fn decode(&self) -> Result<DirectorySnapshot, String> {
        let pks = self.naming.public_key_services();
        let (account, sid_names) = account_from_entries(&self.account, &self.groups)?;
        let mut snap = DirectorySnapshot {
            naming: self.naming.clone(),
            account,
            templates: Vec::new(),
            unusable: Vec::new(),
            services: Vec::new(),
            roots: Vec::new(),
            ntauth: Vec::new(),
            aia: Vec::new(),
            crls: Vec::new(),
            warnings: Vec::new(),
            sid_names,
        };
        for entry in self.entries.iter() {
            classify(&mut snap, &pks, entry);
        }
        snap.templates
            .sort_by(|a, b| a.template.cn.cmp(&b.template.cn));
        Ok(snap)
    }
}

/// The account and its token from its entry and its groups' entries.
fn account_from_entries(
    entry: &Entry,
    groups: &[Entry],
) -> Result<(Account, BTreeMap<Sid, String>), String> {
    let dn = entry.dn.as_str();
    let bad = |e: AttrError| format!("account {dn}: {e}");
    let sid = entry
        .sid("objectSid")
        .map_err(bad)?
        .ok_or_else(|| format!("account {dn} has no objectSid"))?;
    let mut token = Token::new([sid.clone(), Sid::everyone(), Sid::authenticated_users()]);
    let mut names = BTreeMap::from([
        (Sid::everyone(), "Everyone".to_string()),
        (
            Sid::authenticated_users(),
            "Authenticated Users".to_string(),
        ),
    ]);
    let primary = match (entry.count("primaryGroupID").map_err(bad)?, sid.domain()) {
        (Some(rid), Some(domain)) => Some(domain.with_rid(rid)),
        _ => None,
    };
    if let Some(p) = &primary {
        token.insert(p.clone());
    }
    for s in entry.sids("sIDHistory").map_err(bad)? {
        token.insert(s);
    }
    let token_groups = entry.sids("tokenGroups").map_err(bad)?;
    for g in groups {
        let Ok(Some(gsid)) = g.sid("objectSid") else {
            continue;
        };
        let name = g
            .string("sAMAccountName")
            .ok()
            .flatten()
            .or_else(|| g.strings("cn").ok().and_then(|v| v.into_iter().next()))
            .unwrap_or_else(|| g.dn.clone());
        names.insert(gsid.clone(), name);
        token.insert(gsid);
    }
    for s in token_groups {
        token.insert(s);
    }
    let account = Account {
        dn: entry.dn.clone(),
        sam_account_name: entry
            .string("sAMAccountName")
            .map_err(bad)?
            .unwrap_or_default(),
        sid,
        dns_host_name: entry.string("dNSHostName").map_err(bad)?,
        user_principal_name: entry.string("userPrincipalName").map_err(bad)?,
        mail: entry.string("mail").map_err(bad)?,
        user_certificates: entry.values("userCertificate").to_vec(),
        token,
    };
    Ok((account, names))
}

/// The domain root of a DN: its trailing `DC=` components.
fn dn_domain_root(dn: &str) -> String {
    let parts: Vec<&str> = dn.split(',').collect();
    let start = parts
        .iter()
        .position(|p| p.trim().to_ascii_lowercase().starts_with("dc="))
        .unwrap_or(0);
    parts[start..].join(",")
}

/// Template attributes that are not returned by `*` on every server.
const TEMPLATE_ATTRS: [&str; 1] = ["msPKI-Enrollment-Servers"];

fn parent_rdn(dn: &str, base: &str) -> Option<String> {
    let rest = dn.strip_suffix(base).or_else(|| {
        let lower = dn.to_ascii_lowercase();
        lower
            .ends_with(&base.to_ascii_lowercase())
            .then(|| &dn[..dn.len() - base.len()])
    })?;
    let rest = rest.trim_end_matches(',');
    rest.rsplit(',')
        .next()
        .map(|s| s.trim().to_ascii_lowercase())
}

fn classify(snap: &mut DirectorySnapshot, pks: &str, entry: &Entry) {
    if entry.is_a("pKICertificateTemplate") {
        match template_from_entry(entry) {
            Ok(t) => snap.templates.push(t),
            Err(e) => snap
                .unusable
                .push(UnusableTemplate::from_entry(entry, e.to_string())),
        }
    } else if entry.is_a("pKIEnrollmentService") {
        match service_from_entry(entry) {
            Ok(s) => snap.services.push(s),
            Err(e) => snap.warnings.push(format!("{} {e}: CA ignored", entry.dn)),
        }
    } else if entry.is_a("cRLDistributionPoint") {
        snap.crls.push(CrlObject {
            dn: entry.dn.clone(),
            base: entry.values("certificateRevocationList").to_vec(),
            delta: entry.values("deltaRevocationList").to_vec(),
        });
    } else {
        let certs = entry.values("cACertificate").to_vec();
        let first_rdn = entry
            .dn
            .split(',')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if first_rdn == "cn=ntauthcertificates" {
            snap.ntauth.extend(certs);
        } else {
            match parent_rdn(&entry.dn, pks).as_deref() {
                Some("cn=certification authorities") => snap.roots.extend(certs),
                Some("cn=aia") => snap.aia.extend(certs),
                _ => {}
            }
        }
    }
}

/// Decodes a template entry; the first bad value makes the template unusable.
pub fn template_from_entry(e: &Entry) -> Result<TemplateEntry, AttrError> {
    let missing = |name: &str, what: &str| AttrError {
        attribute: name.to_string(),
        expected: what.to_string(),
    };
    let cn = e
        .strings("cn")?
        .into_iter()
        .next()
        .ok_or_else(|| missing("cn", "a template needs a cn"))?;
    let security = match e.bytes("nTSecurityDescriptor")? {
        Some(b) => SecurityDescriptor::from_bytes(b).map_err(|err| AttrError {
            attribute: "nTSecurityDescriptor".into(),
            expected: err.to_string(),
        })?,
        None => {
            return Err(missing(
                "nTSecurityDescriptor",
                "absent: the bind account cannot read the template's permissions",
            ));
        }
    };
    let schema_version = e.count("msPKI-Template-Schema-Version")?.unwrap_or(1);
    let template = Template {
        dn: e.dn.clone(),
        cn,
        display_name: e.string("displayName")?,
        flags: GeneralFlags::from_bits_retain(e.int_bits("flags")?.unwrap_or(0)),
        revision: e.count("revision")?.unwrap_or(0),
        minor_revision: e.count("msPKI-Template-Minor-Revision")?.unwrap_or(0),
        schema_version,
        oid: e.string("msPKI-Cert-Template-OID")?,
        validity: e.period("pKIExpirationPeriod")?,
        renewal_period: e.period("pKIOverlapPeriod")?,
        key_usage: e.bytes("pKIKeyUsage")?.map(<[u8]>::to_vec),
        extended_key_usage: e.strings("pKIExtendedKeyUsage")?,
        default_key_spec: e.count("pKIDefaultKeySpec")?,
        max_issuing_depth: e.signed("pKIMaxIssuingDepth")?,
        critical_extensions: e.strings("pKICriticalExtensions")?,
        default_csps: e.strings("pKIDefaultCSPs")?,
        minimal_key_size: e.count("msPKI-Minimal-Key-Size")?.unwrap_or(0),
        ra_signatures: e.count("msPKI-RA-Signature")?.unwrap_or(0),
        ra_application_policies: e.strings("msPKI-RA-Application-Policies")?,
        supersedes: e.strings("msPKI-Supersede-Templates")?,
        certificate_policies: e.strings("msPKI-Certificate-Policy")?,
        application_policies: e.strings("msPKI-Certificate-Application-Policy")?,
        enrollment_flags: EnrollmentFlags::from_bits_retain(
            e.int_bits("msPKI-Enrollment-Flag")?.unwrap_or(0),
        ),
        private_key_flags: PrivateKeyFlags::from_bits_retain(
            e.int_bits("msPKI-Private-Key-Flag")?.unwrap_or(0),
        ),
        name_flags: NameFlags::from_bits_retain(
            e.int_bits("msPKI-Certificate-Name-Flag")?.unwrap_or(0),
        ),
    };
    if !(1..=4).contains(&template.schema_version) {
        return Err(missing(
            "msPKI-Template-Schema-Version",
            &format!("expected 1 to 4, found {}", template.schema_version),
        ));
    }
    if let Some(oid) = &template.oid
        && !is_oid(oid)
    {
        return Err(missing(
            "msPKI-Cert-Template-OID",
            &format!("expected a dotted OID, found {oid:?}"),
        ));
    }
    Ok(TemplateEntry { template, security })
}

fn is_oid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() >= 2
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Decodes an enrollment service (enterprise CA) entry.
pub fn service_from_entry(e: &Entry) -> Result<EnrollmentService, AttrError> {
    let cn = e
        .strings("cn")?
        .into_iter()
        .next()
        .ok_or_else(|| AttrError {
            attribute: "cn".into(),
            expected: "an enrollment service needs a cn".into(),
        })?;
    let mut servers = Vec::new();
    for v in e.strings("msPKI-Enrollment-Servers")? {
        servers.extend(
            EnrollmentServer::parse_value(&v).map_err(|expected| AttrError {
                attribute: "msPKI-Enrollment-Servers".into(),
                expected,
            })?,
        );
    }
    Ok(EnrollmentService {
        dn: e.dn.clone(),
        cn,
        display_name: e.string("displayName")?,
        dns_host_name: e.string("dNSHostName")?,
        templates: e.strings("certificateTemplates")?,
        ca_certificates: e.values("cACertificate").to_vec(),
        enrollment_servers: servers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_earlier_read_stands_while_its_markers_do() {
        let pks = "7/20261207100000Z//csn1";
        let at = |server: Option<&str>| PksMarkers {
            server: server.map(str::to_string),
            pks: pks.into(),
        };
        let (usn, other) = (Some("dc01/500"), Some("dc01/501"));
        let cases: &[(Option<PksMarkers>, Option<&str>, Reuse)] = &[
            // Nothing written since: no search of Public Key Services at all.
            (Some(at(usn)), usn, Reuse::Yes),
            // Something written somewhere: its own marker decides.
            (Some(at(usn)), other, Reuse::IfPksMarkerIs(pks)),
            // The server stopped showing its value, or never did.
            (Some(at(usn)), None, Reuse::IfPksMarkerIs(pks)),
            (Some(at(None)), None, Reuse::IfPksMarkerIs(pks)),
            (Some(at(None)), usn, Reuse::IfPksMarkerIs(pks)),
            // A file from before the markers: read everything.
            (None, usn, Reuse::No),
            (None, None, Reuse::No),
        ];
        for (earlier, now, want) in cases {
            assert_eq!(reuse(earlier.as_ref(), *now), *want, "{earlier:?} {now:?}");
        }
    }

    #[test]
    fn domain_root_and_parents() {
        assert_eq!(
            dn_domain_root("CN=ws01,CN=Computers,DC=corp,DC=example"),
            "DC=corp,DC=example"
        );
        let pks = "CN=Public Key Services,CN=Services,CN=Configuration,DC=corp,DC=example";
        assert_eq!(
            parent_rdn(&format!("CN=corp-CA,CN=AIA,{pks}"), pks).as_deref(),
            Some("cn=aia")
        );
        assert_eq!(
            parent_rdn(
                &format!(
                    "CN=corp-CA,CN=Certification Authorities,{}",
                    pks.to_uppercase()
                ),
                pks
            )
            .as_deref(),
            Some("cn=certification authorities")
        );
    }

    #[test]
    fn oids() {
        assert!(is_oid("1.3.6.1.4.1.311.21.8.1.2"));
        assert!(!is_oid("1..2"));
        assert!(!is_oid("abc"));
        assert!(!is_oid("1"));
    }

    /// A template entry that cannot be used (no security descriptor, a bad
    /// `flags`), with these values of
    /// `msPKI-Supersede-Templates`.
    fn broken_entry(supersedes: Vec<Vec<u8>>) -> Entry {
        Entry::new("CN=New,CN=Certificate Templates")
            .with("objectClass", [b"pKICertificateTemplate".to_vec()])
            .with("cn", [b"New".to_vec()])
            .with("flags", [b"not-a-number".to_vec()])
            .with("msPKI-Supersede-Templates", supersedes)
    }

    #[test]
    fn an_unusable_template_keeps_what_it_supersedes() {
        let entry = broken_entry(vec![b"Old".to_vec(), b"Older".to_vec()]);
        let problem = template_from_entry(&entry)
            .expect_err("unusable")
            .to_string();
        let u = UnusableTemplate::from_entry(&entry, problem);
        assert_eq!(u.cn.as_deref(), Some("New"));
        assert_eq!(u.supersedes, ["Old", "Older"]);
        assert_eq!(u.supersedes_problem, None);
        assert!(u.supersedes_known());
    }

    #[test]
    fn an_unreadable_supersede_value_makes_the_list_unknown() {
        let entry = broken_entry(vec![b"Old".to_vec(), b"\xff\xfe".to_vec()]);
        let problem = template_from_entry(&entry)
            .expect_err("unusable")
            .to_string();
        let u = UnusableTemplate::from_entry(&entry, problem);
        assert_eq!(u.supersedes, ["Old"], "the readable values are kept");
        let why = u.supersedes_problem.as_deref().expect("a problem");
        assert!(
            why.starts_with("msPKI-Supersede-Templates: value 2"),
            "{why}"
        );
        assert!(!u.supersedes_known());
        // An unknown cn makes the list unknown too.
        let no_cn = UnusableTemplate {
            cn: None,
            ..UnusableTemplate::from_entry(&broken_entry(vec![]), "cn: absent".into())
        };
        assert!(!no_cn.supersedes_known());
    }
}
