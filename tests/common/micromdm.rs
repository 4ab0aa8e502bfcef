//! micromdm's `scepserver` (Debian's `scep` package), a SCEP server we did
//! not write, on loopback with its own file depot and a challenge password.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::{free_port, run};

pub const CHALLENGE: &str = "s3cret-Challenge";

pub fn pem_to_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).expect("PEM body")
}

pub fn to_pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

/// micromdm's scepserver with a fresh CA; killed on drop.
pub struct Micromdm {
    child: Child,
    pub url: String,
    pub ca_pem: PathBuf,
    _dir: tempfile::TempDir,
}

impl Micromdm {
    pub fn start() -> Micromdm {
        let dir = tempfile::tempdir().unwrap();
        let depot = dir.path().join("depot");
        run(Command::new("scepserver")
            .args([
                "ca",
                "-init",
                "-keySize",
                "2048",
                "-organization",
                "scep interop",
            ])
            .arg("-depot")
            .arg(&depot));
        let port = free_port();
        let child = Command::new("scepserver")
            .arg("-depot")
            .arg(&depot)
            .args(["-port", &port.to_string(), "-challenge", CHALLENGE])
            .args(["-allowrenew", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("scepserver (Debian package scep) is installed");
        let server = Micromdm {
            child,
            url: format!("http://127.0.0.1:{port}/scep"),
            ca_pem: depot.join("ca.pem"),
            _dir: dir,
        };
        // Wait until it listens (not a timing assertion: a bound on startup).
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("scepserver did not start listening on {port}");
    }

    pub fn root(&self) -> Vec<u8> {
        pem_to_der(&std::fs::read_to_string(&self.ca_pem).unwrap())
    }
}

impl Drop for Micromdm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
