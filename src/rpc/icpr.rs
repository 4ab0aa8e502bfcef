//! `ICertPassage::CertServerRequest` (opnum 0, [MS-ICPR] 3.2.4.1.1, the
//! processing rules of [MS-WCCE] 3.2.1.4.3.1): the NDR of its in and out
//! parameters, both ways.
//!
//! ```text
//! DWORD CertServerRequest([in] handle_t h, [in] DWORD dwFlags,
//!     [in, unique, string, range(1, 64)] const wchar_t* pwszAuthority,
//!     [in, out, ref] DWORD* pdwRequestId, [out] DWORD* pdwDisposition,
//!     [in, ref] CERTTRANSBLOB* pctbAttribs, [in, ref] CERTTRANSBLOB* pctbRequest,
//!     [out, ref] CERTTRANSBLOB* pctbCert, [out, ref] CERTTRANSBLOB* pctbEncodedCert,
//!     [out, ref] CERTTRANSBLOB* pctbDispositionMessage);
//! typedef struct _CERTTRANSBLOB { ULONG cb; [size_is(cb), unique] BYTE* pb; } CERTTRANSBLOB;
//! ```

use super::ndr::{NdrError, Reader, Writer, from_utf16z, utf16z};

pub const OPNUM_CERT_SERVER_REQUEST: u16 = 0;

/// `dwFlags` ([MS-WCCE] 2.2.2.1.1 via [MS-ICPR] 3.2.4.1.1): the request's
/// encoding and type.
pub const CR_IN_BINARY: u32 = 0x0000_0002;
pub const CR_IN_PKCS10: u32 = 0x0000_0100;
pub const CR_IN_PKCS7: u32 = 0x0000_0300;

/// Dispositions ([MS-WCCE] 3.2.1.4.3.1): a denial or failure puts its
/// HRESULT in `pdwDisposition` instead (as Windows CAs do and impacket and
/// Certipy read it).
pub const CR_DISP_INCOMPLETE: u32 = 0;
pub const CR_DISP_ERROR: u32 = 1;
pub const CR_DISP_DENIED: u32 = 2;
pub const CR_DISP_ISSUED: u32 = 3;
pub const CR_DISP_ISSUED_OUT_OF_BAND: u32 = 4;
pub const CR_DISP_UNDER_SUBMISSION: u32 = 5;

/// The largest request, certificate or chain accepted (a PKCS#10 or a
/// renewal CMS is a few kilobytes).
pub const MAX_BLOB: usize = 1 << 20;
/// `range(1, 64)` on the CA name.
pub const MAX_AUTHORITY: usize = 64;

/// The in parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertServerRequest {
    pub flags: u32,
    /// The CA's name (`pwszAuthority`), `None` for a null pointer.
    pub authority: Option<String>,
    /// 0 for a new request, the request's ID to retrieve a pending one.
    pub request_id: u32,
    /// `name:value` pairs, one a line, UTF-16 in `pctbAttribs`
    /// (`CertificateTemplate:Machine`).
    pub attributes: Vec<(String, String)>,
    /// The PKCS#10 or CMS; empty to retrieve request `request_id`.
    pub request: Vec<u8>,
}

/// The out parameters and the return value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertServerResponse {
    pub request_id: u32,
    /// A `CR_DISP_*` value, or the HRESULT of a denial or failure.
    pub disposition: u32,
    /// `pctbCert`: a PKCS#7 holding the certificate and its chain.
    pub chain: Vec<u8>,
    /// `pctbEncodedCert`: the certificate (DER).
    pub certificate: Vec<u8>,
    /// `pctbDispositionMessage`, decoded from UTF-16.
    pub message: String,
    /// The method's return value (0, or an HRESULT when the call failed
    /// before any request was made).
    pub status: u32,
}

fn blob(w: &mut Writer, b: &[u8]) {
    w.u32(b.len() as u32);
    if b.is_empty() {
        w.null();
    } else {
        w.referent();
        w.conformant_bytes(b);
    }
}

fn read_blob<'a>(r: &mut Reader<'a>, what: &str) -> Result<&'a [u8], NdrError> {
    let cb = r.u32(what)?;
    match r.pointer(what)? {
        None if cb == 0 => Ok(&[]),
        None => Err(r.error(format!(
            "{what}: {cb} bytes announced behind a null pointer"
        ))),
        Some(_) => r.conformant_bytes(Some(cb), MAX_BLOB, what),
    }
}

/// The attributes as [MS-WCCE] 3.2.1.4.3.1.2 writes them: `name:value`
/// lines separated by newlines, UTF-16LE, NUL-terminated.
pub fn encode_attributes(attributes: &[(String, String)]) -> Vec<u8> {
    let text: Vec<String> = attributes.iter().map(|(n, v)| format!("{n}:{v}")).collect();
    utf16z(&text.join("\n"))
}

/// Reads `pctbAttribs`: lines of `name:value` (names trimmed), blank lines
/// skipped; a line without a colon is an error.
pub fn decode_attributes(b: &[u8]) -> Result<Vec<(String, String)>, String> {
    let text = from_utf16z(b).map_err(|e| format!("attributes: {e}"))?;
    let mut out = Vec::new();
    for line in text.split(['\n', '\r']) {
        if line.trim().is_empty() {
            continue;
        }
        let Some((n, v)) = line.split_once(':') else {
            return Err(format!("attributes: the line {line:?} has no name:value"));
        };
        out.push((n.trim().to_string(), v.trim().to_string()));
    }
    Ok(out)
}

impl CertServerRequest {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u32(self.flags);
        match &self.authority {
            Some(a) => {
                w.referent();
                w.wide_string(a);
            }
            None => w.null(),
        }
        w.u32(self.request_id);
        blob(&mut w, &encode_attributes(&self.attributes));
        blob(&mut w, &self.request);
        w.into_bytes()
    }

    pub fn decode(stub: &[u8]) -> Result<CertServerRequest, NdrError> {
        let mut r = Reader::new(stub);
        let flags = r.u32("dwFlags")?;
        let authority = match r.pointer("pwszAuthority")? {
            Some(_) => Some(r.wide_string(MAX_AUTHORITY, "pwszAuthority")?),
            None => None,
        };
        let request_id = r.u32("pdwRequestId")?;
        let attributes = read_blob(&mut r, "pctbAttribs")?;
        let attributes = decode_attributes(attributes).map_err(|e| r.error(e))?;
        let request = read_blob(&mut r, "pctbRequest")?.to_vec();
        Ok(CertServerRequest {
            flags,
            authority,
            request_id,
            attributes,
            request,
        })
    }

    /// The `CertificateTemplate` attribute, if any.
    pub fn template(&self) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("CertificateTemplate"))
            .map(|(_, v)| v.as_str())
    }
}

impl CertServerResponse {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u32(self.request_id);
        w.u32(self.disposition);
        blob(&mut w, &self.chain);
        blob(&mut w, &self.certificate);
        let message = if self.message.is_empty() {
            Vec::new()
        } else {
            utf16z(&self.message)
        };
        blob(&mut w, &message);
        w.u32(self.status);
        w.into_bytes()
    }

    pub fn decode(stub: &[u8]) -> Result<CertServerResponse, NdrError> {
        let mut r = Reader::new(stub);
        let request_id = r.u32("pdwRequestId")?;
        let disposition = r.u32("pdwDisposition")?;
        let chain = read_blob(&mut r, "pctbCert")?.to_vec();
        let certificate = read_blob(&mut r, "pctbEncodedCert")?.to_vec();
        let message = read_blob(&mut r, "pctbDispositionMessage")?;
        let message = from_utf16z(message).map_err(|e| r.error(format!("message: {e}")))?;
        let status = r.u32("return value")?;
        Ok(CertServerResponse {
            request_id,
            disposition,
            chain,
            certificate,
            message,
            status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> CertServerRequest {
        CertServerRequest {
            flags: CR_IN_BINARY | CR_IN_PKCS10,
            authority: Some("corp-CA".into()),
            request_id: 0,
            attributes: vec![("CertificateTemplate".into(), "Machine".into())],
            request: vec![0x30, 0x82, 0x01, 0x00, 0xaa],
        }
    }

    #[test]
    fn a_request_has_the_layout_of_the_idl() {
        let b = request().encode();
        let mut r = Reader::new(&b);
        assert_eq!(r.u32("flags").unwrap(), 0x102);
        assert_eq!(r.pointer("authority").unwrap(), Some(0x20000));
        assert_eq!(r.wide_string(64, "a").unwrap(), "corp-CA");
        assert_eq!(r.u32("id").unwrap(), 0);
        let attribs = utf16z("CertificateTemplate:Machine");
        assert_eq!(r.u32("cb").unwrap() as usize, attribs.len());
        assert_eq!(r.pointer("pb").unwrap(), Some(0x20004));
        assert_eq!(
            r.conformant_bytes(None, 1000, "pb").unwrap(),
            attribs.as_slice()
        );
        assert_eq!(r.u32("cb").unwrap(), 5);
        assert!(r.pointer("pb").unwrap().is_some());
        assert_eq!(
            r.conformant_bytes(Some(5), 1000, "pb").unwrap(),
            [0x30, 0x82, 1, 0, 0xaa]
        );
        assert_eq!(r.remaining(), 0);
        assert_eq!(CertServerRequest::decode(&b).unwrap(), request());
        assert_eq!(request().template(), Some("Machine"));
    }

    #[test]
    fn a_retrieval_has_an_empty_request_and_responses_round_trip() {
        let retrieval = CertServerRequest {
            flags: 0,
            authority: None,
            request_id: 42,
            attributes: vec![],
            request: vec![],
        };
        assert_eq!(
            CertServerRequest::decode(&retrieval.encode()).unwrap(),
            retrieval
        );
        for response in [
            CertServerResponse {
                request_id: 7,
                disposition: CR_DISP_ISSUED,
                chain: vec![1, 2, 3],
                certificate: vec![4, 5],
                message: "Issued".into(),
                status: 0,
            },
            CertServerResponse {
                request_id: 8,
                disposition: 0x8009_4012,
                chain: vec![],
                certificate: vec![],
                message: "Denied by Policy Module".into(),
                status: 0,
            },
            CertServerResponse {
                request_id: 0,
                disposition: CR_DISP_ERROR,
                chain: vec![],
                certificate: vec![],
                message: String::new(),
                status: 0x8007_0005,
            },
        ] {
            assert_eq!(
                CertServerResponse::decode(&response.encode()).unwrap(),
                response
            );
        }
    }

    #[test]
    fn bad_stubs_are_errors() {
        let good = request().encode();
        let mut null_with_length = good.clone();
        // The attributes' pointer (after flags, authority, id and cb).
        let at = 4 + 4 + 12 + 16 + 4 + 4;
        null_with_length[at..at + 4].copy_from_slice(&[0, 0, 0, 0]);
        let mut w = Writer::new();
        w.u32(0);
        w.null();
        w.u32(0);
        blob(&mut w, &utf16z("no colon here"));
        blob(&mut w, &[1]);
        let no_colon = w.into_bytes();
        let cases = [
            ("truncated", good[..good.len() - 1].to_vec(), "bytes needed"),
            (
                "a length behind a null pointer",
                null_with_length,
                "behind a null pointer",
            ),
            ("an attribute without a colon", no_colon, "no name:value"),
        ];
        for (what, bytes, expected) in cases {
            let err = CertServerRequest::decode(&bytes).unwrap_err().to_string();
            assert!(err.contains(expected), "{what}: {err}");
        }
        assert_eq!(
            decode_attributes(&utf16z("CertificateTemplate: User\r\n\nSAN:x=y")).unwrap(),
            vec![
                ("CertificateTemplate".to_string(), "User".to_string()),
                ("SAN".to_string(), "x=y".to_string())
            ]
        );
    }
}
