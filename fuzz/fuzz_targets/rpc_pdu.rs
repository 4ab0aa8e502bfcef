//! DCE/RPC from a peer: a fragment and every body the client and the CA
//! read from one (bind, bind_ack, request, response, fault), the stubs of
//! ept_map and CertServerRequest both ways, towers and SPNEGO framing.
//! What decodes re-encodes to something that decodes to the same value.
#![no_main]

use autoenroll::rpc::epm::{EptMap, EptMapResponse, TcpTower};
use autoenroll::rpc::icpr::{CertServerRequest, CertServerResponse};
use autoenroll::rpc::pdu::{self, Bind, BindAck, Pdu, Request};
use autoenroll::rpc::spnego;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Pdu::parse(data) {
        assert_eq!(Pdu::parse(&p.encode()).as_ref(), Ok(&p));
        let _ = Bind::parse(&p);
        let _ = BindAck::parse(&p);
        let _ = Request::parse(&p);
        let _ = pdu::response_stub(&p);
        let _ = pdu::fault_status(&p);
        let _ = pdu::parse_bind_nak(&p);
    }
    if let Ok(r) = CertServerRequest::decode(data) {
        assert_eq!(CertServerRequest::decode(&r.encode()), Ok(r));
    }
    if let Ok(r) = CertServerResponse::decode(data) {
        let _ = CertServerResponse::decode(&r.encode());
    }
    if let Ok(m) = EptMap::decode(data) {
        assert_eq!(EptMap::decode(&m.encode()), Ok(m));
    }
    if let Ok(m) = EptMapResponse::decode(data) {
        let _ = EptMapResponse::decode(&m.encode(4));
    }
    if let Ok(t) = TcpTower::decode(data) {
        assert_eq!(TcpTower::decode(&t.encode()), Ok(t));
    }
    let _ = spnego::parse_init(data);
    let _ = spnego::parse_resp_token(data);
});
