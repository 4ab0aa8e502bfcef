//! A requester's revocation request, shared by the client (`unenroll
//! --revoke`) and the emulated CA's endpoint: the holder of a certificate
//! asks the CA that issued it to revoke it. AD CS has no such request (only
//! its administrators revoke, [MS-CSRA] ICertAdmin::RevokeCertificate); the
//! emulated CA offers it at [`path`] over HTTPS, authenticated as
//! enrollment is, and only for certificates issued to the same account. A
//! CA without it answers 404, and the client then says the CA's
//! administrator must revoke.

use serde::{Deserialize, Serialize};

/// RFC 5280 5.3.1 CRLReason cessationOfOperation: the holder stops using it.
pub const CESSATION_OF_OPERATION: u8 = 5;

/// The largest request body read.
pub const MAX_BYTES: usize = 4096;

/// The reasons a requester may give (RFC 5280 5.3.1): keyCompromise (1),
/// affiliationChanged (3), superseded (4), cessationOfOperation (5). Hold
/// and the CA's own reasons are the administrator's.
pub const REQUESTER_REASONS: [u8; 4] = [1, 3, 4, 5];

/// The endpoint's path on the CA's HTTPS origin.
pub fn path(ca_name: &str) -> String {
    format!("/{ca_name}_Revocation/revoke")
}

/// The URL of the endpoint of the CA whose enrollment URL is `enrollment`
/// (same scheme, host and port).
pub fn url_for(enrollment: &str, ca_name: &str) -> Option<String> {
    let uri: hyper::Uri = enrollment.parse().ok()?;
    let scheme = uri.scheme_str()?;
    let authority = uri.authority()?;
    Some(format!("{scheme}://{authority}{}", path(ca_name)))
}

/// The request: which certificate (hex serial), and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationRequest {
    pub serial: String,
    pub reason: u8,
}

impl RevocationRequest {
    /// Reads a request body; the error says what is wrong, never quoting it.
    pub fn parse(body: &[u8]) -> Result<RevocationRequest, String> {
        if body.len() > MAX_BYTES {
            return Err(format!("the request is larger than {MAX_BYTES} bytes"));
        }
        let r: RevocationRequest = serde_json::from_slice(body).map_err(|e| {
            format!(
                "not a revocation request (JSON with serial and reason): line {}, column {}",
                e.line(),
                e.column()
            )
        })?;
        if !REQUESTER_REASONS.contains(&r.reason) {
            return Err(format!(
                "reason {} is not one a requester may give ({:?})",
                r.reason, REQUESTER_REASONS
            ));
        }
        Ok(r)
    }
}

/// What the CA answers on success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationAnswer {
    pub serial: String,
    pub reason: u8,
    /// RFC 3339.
    pub revoked_at: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_read_strictly() {
        let ok = RevocationRequest::parse(br#"{"serial":"1a2b","reason":5}"#).unwrap();
        assert_eq!(ok.serial, "1a2b");
        for bad in [
            &br#"{"serial":"1a2b","reason":6}"#[..],
            br#"{"serial":"1a2b"}"#,
            br#"{"serial":"1a2b","reason":5,"as":"admin"}"#,
            b"serial=1a2b",
            b"",
        ] {
            assert!(RevocationRequest::parse(bad).is_err(), "{bad:?}");
        }
        assert!(RevocationRequest::parse(&vec![b' '; MAX_BYTES + 1]).is_err());
    }

    #[test]
    fn the_url_is_on_the_enrollment_origin() {
        assert_eq!(
            url_for(
                "https://ca.corp.example:8443/corp-CA_CES_Kerberos/service.svc/CES",
                "corp-CA"
            )
            .as_deref(),
            Some("https://ca.corp.example:8443/corp-CA_Revocation/revoke")
        );
        assert_eq!(url_for("not a url", "corp-CA"), None);
    }
}
