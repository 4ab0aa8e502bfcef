//! The endpoint mapper's `ept_map` (opnum 3, C706 appendix O, [MS-RPCE]
//! 2.2.1.2.4) and protocol towers (C706 appendix L): which TCP port an
//! interface listens on.
//!
//! A tower for `ncacn_ip_tcp` has five floors: the interface, the transfer
//! syntax, RPC connection-oriented (0x0b), TCP (0x07, the port big-endian)
//! and IP (0x09, the IPv4 address).

use std::net::Ipv4Addr;

use super::ndr::{NdrError, Reader, Writer};
use super::{NDR20, SyntaxId, Uuid};

pub const OPNUM_EPT_MAP: u16 = 3;

const FLOOR_UUID: u8 = 0x0d;
const FLOOR_RPC_CO: u8 = 0x0b;
const FLOOR_TCP: u8 = 0x07;
const FLOOR_IP: u8 = 0x09;

/// The largest tower read (a TCP tower is 75 bytes).
const MAX_TOWER: usize = 1024;
/// The most towers one answer may hold.
const MAX_TOWERS: u32 = 64;

/// `ept_map`'s status when nothing is registered for the interface
/// (`EPT_S_NOT_REGISTERED`).
pub const EPT_S_NOT_REGISTERED: u32 = 0x1601_00d6;

/// An `ncacn_ip_tcp` endpoint of an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpTower {
    pub interface: SyntaxId,
    pub transfer: SyntaxId,
    pub port: u16,
    pub address: Ipv4Addr,
}

fn floor(out: &mut Vec<u8>, lhs: &[u8], rhs: &[u8]) {
    out.extend_from_slice(&(lhs.len() as u16).to_le_bytes());
    out.extend_from_slice(lhs);
    out.extend_from_slice(&(rhs.len() as u16).to_le_bytes());
    out.extend_from_slice(rhs);
}

fn uuid_floor(out: &mut Vec<u8>, s: &SyntaxId) {
    let mut lhs = vec![FLOOR_UUID];
    lhs.extend_from_slice(&s.uuid.to_le_bytes());
    lhs.extend_from_slice(&s.major.to_le_bytes());
    floor(out, &lhs, &s.minor.to_le_bytes());
}

impl TcpTower {
    /// The tower's octets (floor count, then each floor's left and right
    /// sides, lengths little-endian; the port and address big-endian).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = 5u16.to_le_bytes().to_vec();
        uuid_floor(&mut out, &self.interface);
        uuid_floor(&mut out, &self.transfer);
        floor(&mut out, &[FLOOR_RPC_CO], &0u16.to_le_bytes());
        floor(&mut out, &[FLOOR_TCP], &self.port.to_be_bytes());
        floor(&mut out, &[FLOOR_IP], &self.address.octets());
        out
    }

    pub fn decode(b: &[u8]) -> Result<TcpTower, String> {
        let mut at = 0usize;
        let mut take = |n: usize, what: &str| -> Result<&[u8], String> {
            if b.len() - at < n {
                return Err(format!("tower: {what} cut short at byte {at}"));
            }
            let s = &b[at..at + n];
            at += n;
            Ok(s)
        };
        let count = u16::from_le_bytes(take(2, "floor count")?.try_into().unwrap_or([0, 0]));
        if !(3..=8).contains(&count) {
            return Err(format!("tower: {count} floors"));
        }
        let mut floors = Vec::new();
        for _ in 0..count {
            let l = take(2, "floor")?;
            let lhs_len = u16::from_le_bytes([l[0], l[1]]) as usize;
            let lhs = take(lhs_len, "floor")?.to_vec();
            let r = take(2, "floor")?;
            let rhs_len = u16::from_le_bytes([r[0], r[1]]) as usize;
            let rhs = take(rhs_len, "floor")?.to_vec();
            floors.push((lhs, rhs));
        }
        let syntax = |f: &(Vec<u8>, Vec<u8>), what: &str| -> Result<SyntaxId, String> {
            let (lhs, rhs) = f;
            if lhs.len() != 19 || lhs[0] != FLOOR_UUID || rhs.len() != 2 {
                return Err(format!("tower: the {what} floor is not a UUID floor"));
            }
            let mut u = [0u8; 16];
            u.copy_from_slice(&lhs[1..17]);
            Ok(SyntaxId {
                uuid: Uuid::from_le_bytes(u),
                major: u16::from_le_bytes([lhs[17], lhs[18]]),
                minor: u16::from_le_bytes([rhs[0], rhs[1]]),
            })
        };
        let interface = syntax(&floors[0], "interface")?;
        let transfer = syntax(&floors[1], "transfer syntax")?;
        let mut port = None;
        let mut address = Ipv4Addr::UNSPECIFIED;
        for (lhs, rhs) in &floors[2..] {
            match (lhs.as_slice(), rhs.len()) {
                ([FLOOR_TCP], 2) => port = Some(u16::from_be_bytes([rhs[0], rhs[1]])),
                ([FLOOR_IP], 4) => address = Ipv4Addr::new(rhs[0], rhs[1], rhs[2], rhs[3]),
                _ => {}
            }
        }
        let Some(port) = port else {
            return Err("tower: no TCP floor (not ncacn_ip_tcp)".into());
        };
        Ok(TcpTower {
            interface,
            transfer,
            port,
            address,
        })
    }
}

/// `ept_map`'s in parameters: the tower asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EptMap {
    pub tower: Vec<u8>,
    pub max_towers: u32,
}

/// A `twr_t` (a conformant structure: its array's size first, C706
/// 14.3.7.1).
fn write_twr(w: &mut Writer, tower: &[u8]) {
    w.u32(tower.len() as u32);
    w.u32(tower.len() as u32);
    w.bytes(tower);
}

fn read_twr<'a>(r: &mut Reader<'a>) -> Result<&'a [u8], NdrError> {
    let max = r.u32("tower size")?;
    let len = r.u32("tower_length")?;
    r.conformant_bytes_counted(max, Some(len), MAX_TOWER, "tower_octet_string")
}

impl EptMap {
    /// The request for `interface` over TCP, as Windows' and impacket's
    /// clients send it (object and tower referent IDs 1 and 2).
    pub fn for_interface(interface: SyntaxId) -> EptMap {
        EptMap {
            tower: TcpTower {
                interface,
                transfer: NDR20,
                port: 0,
                address: Ipv4Addr::UNSPECIFIED,
            }
            .encode(),
            max_towers: 4,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.referent_id(1);
        w.uuid(&Uuid::default());
        w.referent_id(2);
        write_twr(&mut w, &self.tower);
        w.align(4);
        // entry_handle: a null context handle.
        w.u32(0);
        w.uuid(&Uuid::default());
        w.u32(self.max_towers);
        w.into_bytes()
    }

    pub fn decode(stub: &[u8]) -> Result<EptMap, NdrError> {
        let mut r = Reader::new(stub);
        if r.pointer("obj")?.is_some() {
            r.uuid("obj")?;
        }
        if r.pointer("map_tower")?.is_none() {
            return Err(r.error("map_tower is a null pointer"));
        }
        let tower = read_twr(&mut r)?.to_vec();
        r.align(4)?;
        r.u32("entry_handle")?;
        r.uuid("entry_handle")?;
        let max_towers = r.u32("max_towers")?;
        Ok(EptMap { tower, max_towers })
    }
}

/// `ept_map`'s out parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EptMapResponse {
    pub towers: Vec<Vec<u8>>,
    pub status: u32,
}

impl EptMapResponse {
    pub fn encode(&self, max_towers: u32) -> Vec<u8> {
        let mut w = Writer::new();
        w.u32(0);
        w.uuid(&Uuid::default());
        w.u32(self.towers.len() as u32);
        // towers: [size_is(max_towers), length_is(*num_towers)] twr_p_t[]
        w.u32(max_towers.max(self.towers.len() as u32));
        w.u32(0);
        w.u32(self.towers.len() as u32);
        for _ in &self.towers {
            w.referent();
        }
        for t in &self.towers {
            w.align(4);
            write_twr(&mut w, t);
        }
        w.align(4);
        w.u32(self.status);
        w.into_bytes()
    }

    pub fn decode(stub: &[u8]) -> Result<EptMapResponse, NdrError> {
        let mut r = Reader::new(stub);
        r.u32("entry_handle")?;
        r.uuid("entry_handle")?;
        let num = r.u32("num_towers")?;
        let max = r.u32("towers max count")?;
        let offset = r.u32("towers offset")?;
        let actual = r.u32("towers actual count")?;
        if offset != 0 || actual > max || actual != num || actual > MAX_TOWERS {
            return Err(r.error(format!(
                "{num} towers announced in an array of {actual} of {max} from {offset}"
            )));
        }
        let mut present = Vec::new();
        for _ in 0..actual {
            present.push(r.pointer("tower pointer")?.is_some());
        }
        let mut towers = Vec::new();
        for p in present {
            if p {
                r.align(4)?;
                towers.push(read_twr(&mut r)?.to_vec());
            }
        }
        r.align(4)?;
        let status = r.u32("status")?;
        Ok(EptMapResponse { towers, status })
    }
}

#[cfg(test)]
mod tests {
    use super::super::ICERT_PASSAGE;
    use super::*;

    #[test]
    fn a_tcp_tower_has_five_floors_and_round_trips() {
        let t = TcpTower {
            interface: ICERT_PASSAGE,
            transfer: NDR20,
            port: 49668,
            address: Ipv4Addr::new(127, 0, 0, 1),
        };
        let b = t.encode();
        assert_eq!(b.len(), 75, "2 + 2 x 25 + 7 + 7 + 9");
        assert_eq!(
            &b[b.len() - 16..b.len() - 9],
            &[1, 0, 7, 2, 0, 0xc2, 0x04],
            "the TCP floor, its port big-endian"
        );
        assert_eq!(TcpTower::decode(&b).unwrap(), t);
        assert!(
            TcpTower::decode(&b[..40])
                .unwrap_err()
                .contains("cut short")
        );
    }

    #[test]
    fn ept_map_requests_and_answers_round_trip() {
        let req = EptMap::for_interface(ICERT_PASSAGE);
        let b = req.encode();
        assert_eq!(&b[..4], &[1, 0, 0, 0]);
        assert_eq!(&b[20..24], &[2, 0, 0, 0]);
        assert_eq!(EptMap::decode(&b).unwrap(), req);
        let tower = TcpTower {
            port: 1234,
            ..TcpTower::decode(&req.tower).unwrap()
        };
        let resp = EptMapResponse {
            towers: vec![tower.encode()],
            status: 0,
        };
        let back = EptMapResponse::decode(&resp.encode(4)).unwrap();
        assert_eq!(back, resp);
        assert_eq!(TcpTower::decode(&back.towers[0]).unwrap().port, 1234);
        let none = EptMapResponse {
            towers: vec![],
            status: EPT_S_NOT_REGISTERED,
        };
        assert_eq!(EptMapResponse::decode(&none.encode(4)).unwrap(), none);
    }
}
