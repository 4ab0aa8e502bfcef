//! Enrollment over MS-ICPR, as Windows autoenrollment does it: the endpoint
//! mapper on the CA host finds `ICertPassage`, a Kerberos association at
//! packet privacy carries `CertServerRequest`, and its disposition becomes
//! the same [`Outcome`] the CES path gives.

use std::net::SocketAddr;
use std::time::Duration;

use super::client::{ClientError, Outcome};
use crate::krb::Credentials;
use crate::pki::cms::read_certs_only;
use crate::rpc::ICERT_PASSAGE;
use crate::rpc::conn::{Association, ClientAuth, Level, RpcError, map_endpoint};
use crate::rpc::icpr::{
    CR_DISP_DENIED, CR_DISP_ERROR, CR_DISP_INCOMPLETE, CR_DISP_ISSUED, CR_DISP_ISSUED_OUT_OF_BAND,
    CR_DISP_UNDER_SUBMISSION, CR_IN_BINARY, CR_IN_PKCS7, CR_IN_PKCS10, CertServerRequest,
    CertServerResponse, OPNUM_CERT_SERVER_REQUEST,
};

/// E_FAIL: the CA could not do its part; the request is sent again later.
const E_FAIL: u32 = 0x8000_4005;
/// CERTSRV_E_... a denial without its own code (CR_DISP_DENIED alone).
const DENIED_WITHOUT_CODE: u32 = 0x8009_4014;

/// Where a CA's RPC endpoint is: its host name (the enrollment service's
/// `dNSHostName`, also the Kerberos service principal's host), the
/// address that name resolves to, and the endpoint mapper's port there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcTarget {
    pub host: String,
    pub mapper: SocketAddr,
    /// The CA's name (`pwszAuthority`).
    pub ca_name: String,
}

impl RpcTarget {
    /// How the target is named in messages and reports.
    pub fn describe(&self) -> String {
        format!("rpc://{}:{}", self.host, self.mapper.port())
    }
}

fn rpc_error(target: &RpcTarget, source: RpcError) -> ClientError {
    ClientError::Rpc {
        target: target.describe(),
        source,
    }
}

/// One `CertServerRequest` call on a fresh association.
pub async fn call(
    credentials: &Credentials,
    target: &RpcTarget,
    request: &CertServerRequest,
    limit: Duration,
) -> Result<CertServerResponse, ClientError> {
    let work = async {
        let port = map_endpoint(target.mapper, ICERT_PASSAGE, limit).await?;
        let addr = SocketAddr::new(target.mapper.ip(), port);
        let auth = ClientAuth {
            credentials: credentials.clone(),
            spn: format!("host/{}", target.host),
            spnego: false,
            level: Level::Privacy,
        };
        let mut association = Association::connect(addr, ICERT_PASSAGE, Some(auth)).await?;
        let stub = association
            .call(OPNUM_CERT_SERVER_REQUEST, &request.encode())
            .await?;
        Ok(CertServerResponse::decode(&stub)?)
    };
    match tokio::time::timeout(limit, work).await {
        Ok(r) => r.map_err(|e| rpc_error(target, e)),
        Err(_) => Err(rpc_error(
            target,
            RpcError::Timeout("the ICertPassage call".into()),
        )),
    }
}

/// The request for a new certificate (`renewal` false: a PKCS#10) or a
/// renewal (a CMS SignedData around one).
pub fn request_for(
    token: &[u8],
    template: &str,
    renewal: bool,
    ca_name: &str,
) -> CertServerRequest {
    CertServerRequest {
        flags: CR_IN_BINARY | if renewal { CR_IN_PKCS7 } else { CR_IN_PKCS10 },
        authority: Some(ca_name.to_string()),
        request_id: 0,
        attributes: vec![("CertificateTemplate".to_string(), template.to_string())],
        request: token.to_vec(),
    }
}

/// Sends a request for `template`.
pub async fn submit(
    credentials: &Credentials,
    target: &RpcTarget,
    token: &[u8],
    template: &str,
    renewal: bool,
    limit: Duration,
) -> Result<Outcome, ClientError> {
    let request = request_for(token, template, renewal, &target.ca_name);
    let response = call(credentials, target, &request, limit).await?;
    outcome(target, response)
}

/// Asks about a pending request ([MS-WCCE] 3.2.1.4.3.1.1: an empty request
/// with the request's ID).
pub async fn query(
    credentials: &Credentials,
    target: &RpcTarget,
    request_id: u64,
    limit: Duration,
) -> Result<Outcome, ClientError> {
    let Ok(id) = u32::try_from(request_id) else {
        return Err(ClientError::Answer {
            url: target.describe(),
            what: format!("request ID {request_id} does not fit ICertPassage's 32 bits"),
        });
    };
    let request = CertServerRequest {
        flags: 0,
        authority: Some(target.ca_name.clone()),
        request_id: id,
        attributes: Vec::new(),
        request: Vec::new(),
    };
    let response = call(credentials, target, &request, limit).await?;
    outcome(target, response)
}

/// The outcome a disposition stands for (pure).
pub fn outcome(target: &RpcTarget, r: CertServerResponse) -> Result<Outcome, ClientError> {
    let answer = |what: String| ClientError::Answer {
        url: target.describe(),
        what,
    };
    if r.status != 0 {
        return Ok(Outcome::Denied {
            request_id: None,
            hresult: r.status,
            message: r.message,
            retryable: r.status == E_FAIL,
        });
    }
    let id = (r.request_id != 0).then_some(u64::from(r.request_id));
    match r.disposition {
        CR_DISP_ISSUED | CR_DISP_ISSUED_OUT_OF_BAND => {
            if r.certificate.is_empty() {
                return Err(answer("the CA says issued but sent no certificate".into()));
            }
            let chain = if r.chain.is_empty() {
                Vec::new()
            } else {
                read_certs_only(&r.chain)
                    .map_err(|e| answer(format!("the chain PKCS#7 cannot be read: {e}")))?
            };
            Ok(Outcome::Issued {
                request_id: u64::from(r.request_id),
                certificate: r.certificate,
                chain,
            })
        }
        CR_DISP_UNDER_SUBMISSION => Ok(Outcome::Pending {
            request_id: u64::from(r.request_id),
            message: r.message,
        }),
        CR_DISP_DENIED => Ok(Outcome::Denied {
            request_id: id,
            hresult: DENIED_WITHOUT_CODE,
            message: r.message,
            retryable: false,
        }),
        CR_DISP_INCOMPLETE | CR_DISP_ERROR => Ok(Outcome::Denied {
            request_id: id,
            hresult: E_FAIL,
            message: r.message,
            retryable: true,
        }),
        hresult if hresult & 0x8000_0000 != 0 => Ok(Outcome::Denied {
            request_id: id,
            hresult,
            message: r.message,
            retryable: hresult == E_FAIL,
        }),
        other => Err(answer(format!("an unknown disposition {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> RpcTarget {
        RpcTarget {
            host: "ca.corp.example".into(),
            mapper: "127.0.0.1:135".parse().unwrap(),
            ca_name: "corp-CA".into(),
        }
    }

    fn response(disposition: u32, certificate: &[u8], message: &str) -> CertServerResponse {
        CertServerResponse {
            request_id: 9,
            disposition,
            chain: vec![],
            certificate: certificate.to_vec(),
            message: message.into(),
            status: 0,
        }
    }

    #[test]
    fn dispositions_map_to_the_outcomes_of_ces() {
        let cases: Vec<(&str, CertServerResponse, Result<Outcome, &str>)> = vec![
            (
                "issued",
                response(3, &[0x30], "Issued"),
                Ok(Outcome::Issued {
                    request_id: 9,
                    certificate: vec![0x30],
                    chain: vec![],
                }),
            ),
            (
                "pending",
                response(5, &[], "Taken Under Submission"),
                Ok(Outcome::Pending {
                    request_id: 9,
                    message: "Taken Under Submission".into(),
                }),
            ),
            (
                "denied with its HRESULT",
                response(0x8009_4012, &[], "no Enroll right"),
                Ok(Outcome::Denied {
                    request_id: Some(9),
                    hresult: 0x8009_4012,
                    message: "no Enroll right".into(),
                    retryable: false,
                }),
            ),
            (
                "the CA failed: tried again later",
                response(0x8000_4005, &[], "directory unavailable"),
                Ok(Outcome::Denied {
                    request_id: Some(9),
                    hresult: 0x8000_4005,
                    message: "directory unavailable".into(),
                    retryable: true,
                }),
            ),
            (
                "CR_DISP_DENIED alone",
                response(2, &[], "Denied by Policy Module"),
                Ok(Outcome::Denied {
                    request_id: Some(9),
                    hresult: DENIED_WITHOUT_CODE,
                    message: "Denied by Policy Module".into(),
                    retryable: false,
                }),
            ),
            (
                "issued without a certificate",
                response(3, &[], ""),
                Err("sent no certificate"),
            ),
            (
                "an unknown disposition",
                response(77, &[], ""),
                Err("unknown disposition 77"),
            ),
        ];
        for (what, r, expected) in cases {
            match (outcome(&target(), r), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{what}"),
                (Err(e), Err(text)) => assert!(e.to_string().contains(text), "{what}: {e}"),
                (got, want) => panic!("{what}: {got:?}, expected {want:?}"),
            }
        }
    }

    #[test]
    fn requests_say_what_they_carry() {
        let new = request_for(&[1], "Machine", false, "corp-CA");
        assert_eq!(new.flags, 0x102);
        assert_eq!(new.template(), Some("Machine"));
        assert_eq!(request_for(&[1], "Machine", true, "corp-CA").flags, 0x302);
    }
}
