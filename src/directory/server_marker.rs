//! A value the directory server moves with every change it stores, anywhere
//! in its database, read with one base search of one entry. A cache of
//! Public Key Services (the CA's) checks it first: while it stands still,
//! nothing changed at all and the change marker of Public Key Services
//! ([`Directory::change_marker`], one entry per PKI object, so its cost grows
//! with the template count) need not be read. When it moved (any write, to
//! an account as well), the change marker decides as before.
//!
//! - AD ([MS-ADTS] 3.1.1.3.2, rootDSE attributes): `highestCommittedUSN`,
//!   the highest update sequence number the DC has committed (each
//!   originating or replicated write takes a new one), with `dsServiceName`,
//!   because USNs are counted per DC.
//! - OpenLDAP with the syncprov overlay: the `contextCSN` values of the
//!   naming context's entry (one change sequence number per provider, moved
//!   by every write), which syncprov serves from memory.
//! - Neither: no value, and every check reads the change marker.

use ldap3::Scope;

use super::connection::{Directory, DirectoryError};
use super::entry::Entry;

/// Where a server shows its database-wide change value, found once per
/// server by [`Directory::server_marker_source`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMarkerSource {
    /// AD's rootDSE `highestCommittedUSN` and `dsServiceName`.
    HighestCommittedUsn,
    /// OpenLDAP's (syncprov) `contextCSN` of this naming context's entry.
    ContextCsn { naming_context: String },
    /// The server offers neither.
    Unavailable,
}

const USN: &str = "highestCommittedUSN";
const DSA: &str = "dsServiceName";
const CSN: &str = "contextCSN";

/// What the rootDSE read of [`Directory::server_marker_after`] must ask for
/// (beside `namingContexts`).
pub const ROOT_ATTRS: [&str; 2] = [USN, DSA];

impl Directory {
    /// Finds where this server shows its change value for the naming
    /// context that holds `under` (Public Key Services): two base searches
    /// at most, meant to be made once and remembered.
    pub async fn server_marker_source(
        &mut self,
        under: &str,
    ) -> Result<ServerMarkerSource, DirectoryError> {
        let root = self.base_entry("", &[USN, DSA, "namingContexts"]).await?;
        let source = match &root {
            Some(root) => self.source_in(root, under)?,
            None => ServerMarkerSource::Unavailable,
        };
        if let ServerMarkerSource::ContextCsn { .. } = &source
            && self.server_marker(&source).await?.is_none()
        {
            return Ok(ServerMarkerSource::Unavailable);
        }
        Ok(source)
    }

    /// Where the server whose rootDSE is `root` (read with [`ROOT_ATTRS`]
    /// and `namingContexts`) would show its change value for `under`: AD's
    /// USN when the rootDSE has it, else the `contextCSN` of the naming
    /// context holding `under` (not yet read, so perhaps absent).
    fn source_in(&self, root: &Entry, under: &str) -> Result<ServerMarkerSource, DirectoryError> {
        if usn_marker(root)?.is_some() {
            return Ok(ServerMarkerSource::HighestCommittedUsn);
        }
        let contexts = root
            .strings("namingContexts")
            .map_err(|e| self.content(e))?;
        Ok(match naming_context_of(under, &contexts) {
            Some(context) => ServerMarkerSource::ContextCsn {
                naming_context: context.to_string(),
            },
            None => ServerMarkerSource::Unavailable,
        })
    }

    /// The server's change value now, or `None` when `source` offers none
    /// (then no search is made) or the server stopped showing it.
    pub async fn server_marker(
        &mut self,
        source: &ServerMarkerSource,
    ) -> Result<Option<String>, DirectoryError> {
        match source {
            ServerMarkerSource::Unavailable => Ok(None),
            ServerMarkerSource::HighestCommittedUsn => {
                match self.base_entry("", &[USN, DSA]).await? {
                    Some(root) => usn_marker(&root),
                    None => Ok(None),
                }
            }
            ServerMarkerSource::ContextCsn { naming_context } => {
                match self.base_entry(naming_context, &[CSN]).await? {
                    Some(entry) => Ok(csn_marker(entry.strings(CSN).map_err(|e| self.content(e))?)),
                    None => Ok(None),
                }
            }
        }
    }

    /// The server's change value for the naming context that holds
    /// `under`, given its rootDSE `root` read just before (with
    /// [`ROOT_ATTRS`]): AD's is in the rootDSE itself; slapd's takes one base
    /// search. For a reader that checks once per connection (the pulse);
    /// `None` when the server shows neither.
    pub async fn server_marker_after(
        &mut self,
        root: &Entry,
        under: &str,
    ) -> Result<Option<String>, DirectoryError> {
        match self.source_in(root, under)? {
            ServerMarkerSource::HighestCommittedUsn => usn_marker(root),
            source => self.server_marker(&source).await,
        }
    }

    async fn base_entry(
        &mut self,
        dn: &str,
        attrs: &[&str],
    ) -> Result<Option<Entry>, DirectoryError> {
        Ok(self
            .search(dn, Scope::Base, "(objectClass=*)", attrs, false)
            .await?
            .pop())
    }

    fn content(&self, e: impl std::fmt::Display) -> DirectoryError {
        DirectoryError::Content {
            url: self.url().to_string(),
            what: format!("the server's change value: {e}"),
        }
    }
}

/// `dsServiceName/highestCommittedUSN`, when the rootDSE has both.
fn usn_marker(root: &Entry) -> Result<Option<String>, DirectoryError> {
    let one = |name: &str| {
        root.string(name).map_err(|e| DirectoryError::Content {
            url: String::new(),
            what: format!("the rootDSE's {name}: {e}"),
        })
    };
    Ok(match (one(DSA)?, one(USN)?) {
        (Some(dsa), Some(usn)) if !usn.is_empty() => Some(format!("{dsa}/{usn}")),
        _ => None,
    })
}

/// The contextCSN values in one order (a server may list them in any), or
/// `None` when there are none.
fn csn_marker(mut values: Vec<String>) -> Option<String> {
    values.retain(|v| !v.is_empty());
    if values.is_empty() {
        return None;
    }
    values.sort();
    Some(values.join(" "))
}

/// The naming context among `contexts` that holds `dn`: the longest one
/// `dn` ends with at an RDN boundary, compared without regard to case.
fn naming_context_of<'c>(dn: &str, contexts: &'c [String]) -> Option<&'c str> {
    let dn = dn.to_ascii_lowercase();
    contexts
        .iter()
        .filter(|c| !c.is_empty())
        .filter(|c| {
            let c = c.to_ascii_lowercase();
            dn == c
                || dn
                    .strip_suffix(&c)
                    .is_some_and(|head| head.ends_with(',') && !head.ends_with("\\,"))
        })
        .max_by_key(|c| c.len())
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attribute names with their values.
    type Attrs<'a> = &'a [(&'a str, &'a [&'a str])];

    fn entry(attrs: Attrs) -> Entry {
        attrs.iter().fold(Entry::new(""), |e, (name, values)| {
            e.with(name, values.iter().map(|v| v.as_bytes().to_vec()))
        })
    }

    #[test]
    fn the_naming_context_is_the_longest_that_holds_the_dn_at_an_rdn_boundary() {
        let pks = "CN=Public Key Services,CN=Services,CN=Configuration,DC=corp,DC=example";
        let contexts = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases: &[(&[&str], Option<&str>)] = &[
            (&["DC=corp,DC=example"], Some("DC=corp,DC=example")),
            (&["dc=CORP,dc=example"], Some("dc=CORP,dc=example")),
            (
                &["DC=corp,DC=example", "CN=Configuration,DC=corp,DC=example"],
                Some("CN=Configuration,DC=corp,DC=example"),
            ),
            (&["DC=xcorp,DC=example", "DC=example2"], None),
            (&["orp,DC=example"], None),
            (&[""], None),
            (&[], None),
            (&[pks], Some(pks)),
        ];
        for (given, want) in cases {
            assert_eq!(naming_context_of(pks, &contexts(given)), *want, "{given:?}");
        }
        // An escaped comma is part of an RDN's value, not a boundary.
        let escaped = contexts(&["DC=example"]);
        assert_eq!(naming_context_of(r"CN=a\,DC=example", &escaped), None);
    }

    #[test]
    fn the_usn_counts_only_with_the_dc_it_is_counted_on() {
        let dsa = "CN=NTDS Settings,CN=DC01,CN=Servers,CN=Default-First-Site-Name,CN=Sites,CN=Configuration,DC=corp,DC=example";
        let cases: &[(Attrs, Option<String>)] = &[
            (
                &[(USN, &["12345"]), (DSA, &[dsa])],
                Some(format!("{dsa}/12345")),
            ),
            (&[(USN, &["12345"])], None),
            (&[(DSA, &[dsa])], None),
            (&[(USN, &[""]), (DSA, &[dsa])], None),
            (&[], None),
        ];
        for (attrs, want) in cases {
            assert_eq!(usn_marker(&entry(attrs)).unwrap(), *want, "{attrs:?}");
        }
    }

    #[test]
    fn context_csns_compare_as_a_set() {
        let a = "20261203120000.000001Z#000000#001#000000";
        let b = "20261203120500.000002Z#000000#002#000000";
        assert_eq!(
            csn_marker(vec![a.into(), b.into()]),
            csn_marker(vec![b.into(), a.into()])
        );
        assert_ne!(csn_marker(vec![a.into()]), csn_marker(vec![b.into()]));
        assert_eq!(csn_marker(vec![]), None);
        assert_eq!(csn_marker(vec![String::new()]), None);
    }
}
