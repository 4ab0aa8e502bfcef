//! The emulated CA's request database: every request the CA received, what it
//! decided, the certificate it issued and whether that certificate was revoked.
//!
//! It plays the part of the AD CS request table ([MS-CSRA] 3.1.1.1): a request
//! ID clients poll with ([MS-WSTEP] QueryTokenStatus), the raw request, the
//! disposition and the issued certificate. It is a SQLite file because the
//! server and the admin commands (approve, deny, revoke, crl) use it at the
//! same time from different processes:
//!
//! - `journal_mode=WAL` lets readers proceed while a writer commits;
//! - `synchronous=FULL` makes every commit durable: once a client was told a
//!   request ID or given a certificate, a crash cannot forget it;
//! - `busy_timeout` makes a second process wait for the write lock instead of
//!   failing, and every write transaction is `BEGIN IMMEDIATE` so that two
//!   writers queue on the lock rather than deadlock on a lock upgrade;
//! - `PRAGMA user_version` is the schema version; [`MIGRATIONS`] brings an
//!   older file up to date when it is opened.
//!
//! Timestamps are stored as Unix seconds (UTC); sub-second precision is
//! dropped, which is all X.509 can carry anyway.

use std::fmt;
use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ValueRef};
use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, TransactionBehavior, params};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// How long a connection waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest serial number a conforming CA issues (RFC 5280 4.1.2.2).
const MAX_SERIAL_OCTETS: usize = 20;

/// Schema migrations: entry `i` brings a file from version `i` to `i + 1`.
/// The schema version of a file is `PRAGMA user_version`; a new file has 0.
/// Append to this list, never edit an entry that has shipped.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the request table and the CRL counter.
    "CREATE TABLE requests (
        -- AUTOINCREMENT: an ID a client was given is never handed out again.
        id                INTEGER PRIMARY KEY AUTOINCREMENT,
        fingerprint       TEXT NOT NULL UNIQUE,
        requester         TEXT NOT NULL,
        requester_sid     TEXT,
        template          TEXT,
        request           BLOB NOT NULL,
        disposition       TEXT NOT NULL
                          CHECK (disposition IN ('pending', 'issued', 'denied', 'revoked')),
        hresult           INTEGER,
        reason            TEXT NOT NULL DEFAULT '',
        certificate       BLOB,
        serial            TEXT UNIQUE,
        profile           TEXT,
        renewal_of        TEXT,
        approved          INTEGER NOT NULL DEFAULT 0 CHECK (approved IN (0, 1)),
        submitted_at      INTEGER NOT NULL,
        resolved_at       INTEGER,
        not_after         INTEGER,
        revoked_at        INTEGER,
        revocation_reason INTEGER
                          CHECK (revocation_reason IS NULL
                                 OR (revocation_reason BETWEEN 0 AND 10 AND revocation_reason <> 7)),
        -- A certificate exists exactly when one was issued.
        CHECK ((disposition IN ('issued', 'revoked'))
               = (certificate IS NOT NULL AND serial IS NOT NULL AND not_after IS NOT NULL)),
        CHECK ((disposition = 'revoked') = (revoked_at IS NOT NULL AND revocation_reason IS NOT NULL))
    );
    CREATE INDEX requests_by_disposition ON requests (disposition);
    CREATE TABLE crl_state (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        last_number INTEGER NOT NULL CHECK (last_number >= 0)
    );
    INSERT INTO crl_state (id, last_number) VALUES (1, 0);",
    // 1 -> 2: how each request was authenticated (NULL: recorded before
    // the column existed).
    "ALTER TABLE requests ADD COLUMN authentication TEXT
        CHECK (authentication IS NULL OR authentication IN ('kerberos', 'password', 'renewal'));",
    // 2 -> 3: the front door a request came through (NULL: the enrollment
    // web service, or recorded before the column existed; 'rpc':
    // ICertPassage over DCE/RPC, whose authentication is 'kerberos').
    "ALTER TABLE requests ADD COLUMN method TEXT CHECK (method IS NULL OR method IN ('rpc'));",
    // 3 -> 4: the NDES role (`ca::ndes`): challenges (only their SHA-256
    // is kept), SCEP transactions mapped to their request, and the
    // challenge events with their diagnostic codes.
    "CREATE TABLE ndes_challenges (
        hash        TEXT PRIMARY KEY,
        kind        TEXT NOT NULL CHECK (kind IN ('one-time', 'dynamic')),
        issued_to   TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL,
        used_at     INTEGER,
        -- The SCEP transaction that used it: a resend of that transaction
        -- is a retry, any other use a reuse.
        used_by     TEXT
    );
    CREATE TABLE ndes_transactions (
        transaction_id TEXT PRIMARY KEY,
        request_id     INTEGER NOT NULL REFERENCES requests (id),
        created_at     INTEGER NOT NULL
    );
    CREATE TABLE ndes_events (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        at             INTEGER NOT NULL,
        event_id       INTEGER NOT NULL,
        code           TEXT NOT NULL,
        transaction_id TEXT,
        request_id     INTEGER,
        detail         TEXT NOT NULL DEFAULT ''
    );",
];

/// The schema version this code reads and writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Where a request stands. The numeric codes are the CR_DISP_* values of
/// [MS-WCCE] 3.2.1.4.2.1 (certcli.h), which MS-WSTEP responses carry too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Disposition {
    /// Taken under submission: waiting for a decision (new) or for a CA
    /// manager's approval (after [`Database::record_pending`]).
    Pending,
    Issued,
    Denied,
    /// Issued, then revoked. AD CS reports CR_DISP_REVOKED (6) when such a
    /// request is queried, so [`Disposition::code`] does too; a caller that
    /// must hand a client the certificate anyway (a retrieval of an old
    /// request) decides that itself: the certificate stays in the record.
    Revoked,
}

impl Disposition {
    /// The CR_DISP_* code: 5 under submission, 3 issued, 2 denied, 6 revoked.
    pub fn code(self) -> u32 {
        match self {
            Disposition::Pending => 5,
            Disposition::Issued => 3,
            Disposition::Denied => 2,
            Disposition::Revoked => 6,
        }
    }

    /// The name stored in the database and shown by the admin commands.
    pub fn name(self) -> &'static str {
        match self {
            Disposition::Pending => "pending",
            Disposition::Issued => "issued",
            Disposition::Denied => "denied",
            Disposition::Revoked => "revoked",
        }
    }

    fn from_name(name: &str) -> Option<Disposition> {
        [
            Disposition::Pending,
            Disposition::Issued,
            Disposition::Denied,
            Disposition::Revoked,
        ]
        .into_iter()
        .find(|d| d.name() == name)
    }
}

impl fmt::Display for Disposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromSql for Disposition {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let name = value.as_str()?;
        Disposition::from_name(name)
            .ok_or_else(|| FromSqlError::Other(format!("unknown disposition {name:?}").into()))
    }
}

/// How the requester of a request was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Authentication {
    /// HTTP Negotiate on the Kerberos endpoint.
    Kerberos,
    /// A WS-Security UsernameToken checked against the directory.
    Password,
    /// No credentials: a renewal signed by a certificate this CA issued,
    /// whose requester is that certificate's.
    Renewal,
    /// ICertPassage over DCE/RPC, Kerberos at packet privacy.
    Rpc,
}

impl Authentication {
    /// The name stored in the database and shown by `ca requests`.
    pub fn name(self) -> &'static str {
        match self {
            Authentication::Kerberos => "kerberos",
            Authentication::Password => "password",
            Authentication::Renewal => "renewal",
            Authentication::Rpc => "rpc-kerberos",
        }
    }

    /// The `authentication` and `method` columns of a request authenticated
    /// this way.
    fn columns(self) -> (&'static str, Option<&'static str>) {
        match self {
            Authentication::Rpc => ("kerberos", Some("rpc")),
            other => (other.name(), None),
        }
    }

    fn from_name(name: &str) -> Option<Authentication> {
        [
            Authentication::Kerberos,
            Authentication::Password,
            Authentication::Renewal,
        ]
        .into_iter()
        .find(|a| a.name() == name)
    }
}

impl FromSql for Authentication {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let name = value.as_str()?;
        Authentication::from_name(name)
            .ok_or_else(|| FromSqlError::Other(format!("unknown authentication {name:?}").into()))
    }
}

/// The requester recorded for a request refused before its sender was
/// authenticated (a bad, expired or replayed Kerberos authenticator).
pub const UNAUTHENTICATED: &str = "(unauthenticated)";

/// One request and everything the CA decided about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// The request ID clients poll with (positive, never reused).
    pub id: u64,
    /// SHA-256 (lower-case hex) of [`RequestRecord::request`]; see
    /// [`fingerprint`]. A request refused before its sender was known has
    /// `unauthenticated:<random>` instead, so that it never stands for the
    /// same bytes sent later by an authenticated requester.
    pub fingerprint: String,
    /// The account (sAMAccountName) as authenticated.
    pub requester: String,
    pub requester_sid: Option<String>,
    /// The template's cn.
    pub template: Option<String>,
    /// The BinarySecurityToken bytes as received.
    pub request: Vec<u8>,
    pub disposition: Disposition,
    pub hresult: Option<u32>,
    /// The disposition message or the reason for a denial.
    pub reason: String,
    pub certificate: Option<Vec<u8>>,
    /// Lower-case hex without leading zero bytes (see [`normalize_serial`]).
    pub serial: Option<String>,
    /// JSON of the profile decided for a pending request; opaque here. It is
    /// kept after the decision, as a record of what was approved.
    pub profile: Option<String>,
    /// The serial of the certificate a renewal replaces.
    pub renewal_of: Option<String>,
    /// Issued after a CA manager's approval.
    pub approved: bool,
    pub submitted_at: OffsetDateTime,
    /// When the request was issued or denied.
    pub resolved_at: Option<OffsetDateTime>,
    pub not_after: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    /// RFC 5280 5.3.1 CRLReason code.
    pub revocation_reason: Option<u8>,
    /// How the requester was authenticated (`None`: recorded before this
    /// was).
    pub authentication: Option<Authentication>,
}

/// What [`Database::submit`] stores for a new request.
#[derive(Debug, Clone, Copy)]
pub struct NewRequest<'a> {
    pub requester: &'a str,
    pub requester_sid: Option<&'a str>,
    pub template: Option<&'a str>,
    pub request: &'a [u8],
    /// The serial of the certificate being renewed, in any form
    /// [`normalize_serial`] accepts.
    pub renewal_of: Option<&'a str>,
    pub authentication: Option<Authentication>,
}

/// What the CA decided about a request, recorded together with the request
/// by [`Database::submit_decided`].
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    /// Issued at once: the certificate, its serial (any form
    /// [`normalize_serial`] accepts) and its end of validity.
    Issued {
        certificate: &'a [u8],
        serial: &'a str,
        not_after: OffsetDateTime,
    },
    /// Waiting for a CA manager ([`Database::record_pending`]).
    Pending {
        profile_json: &'a str,
        reason: &'a str,
    },
    /// Refused ([`Database::record_denied`]).
    Denied { hresult: u32, reason: &'a str },
}

/// What [`Database::submit_decided`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// The outcome was recorded for request `id`: a new one, or one stored
    /// before but never decided (the CA stopped in between).
    Recorded { id: u64 },
    /// The same request was decided before: its record, unchanged. The
    /// outcome given was not recorded (a certificate signed for it must
    /// not be sent).
    Earlier(Box<RequestRecord>),
}

/// Which requests [`Database::list`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFilter {
    All,
    Pending,
}

/// One revoked certificate, as a CRL lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedEntry {
    /// Normalized serial (see [`normalize_serial`]).
    pub serial: String,
    pub revoked_at: OffsetDateTime,
    /// RFC 5280 5.3.1 CRLReason code.
    pub reason: u8,
}

/// A serial number that cannot be read as one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("serial number {serial:?}: {problem}")]
pub struct InvalidSerial {
    pub serial: String,
    pub problem: String,
}

/// A failure of the request database, with the file it concerns.
#[derive(Debug, thiserror::Error)]
#[error("request database {}: {kind}", path.display())]
pub struct DbError {
    pub path: PathBuf,
    #[source]
    pub kind: DbErrorKind,
}

/// What went wrong, without the path (see [`DbError`]).
#[derive(Debug, thiserror::Error)]
pub enum DbErrorKind {
    #[error("cannot create the file: {0}")]
    Create(#[source] io::Error),
    #[error("{what}: {source}")]
    Sqlite {
        what: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{what}: the file is not a request database or is corrupt ({source})")]
    NotADatabase {
        what: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("schema version {found} is newer than this program understands ({supported})")]
    TooNew { found: u32, supported: u32 },
    #[error("journal mode is {mode:?}, expected \"wal\" (the file system may not support WAL)")]
    NotWal { mode: String },
    #[error("no request with ID {id}")]
    UnknownRequest { id: u64 },
    #[error("request {id} is {disposition}, not pending")]
    NotPending { id: u64, disposition: Disposition },
    #[error("the same request was submitted as request {id} by {stored:?}, not by {given:?}")]
    RequesterMismatch {
        id: u64,
        stored: String,
        given: String,
    },
    #[error("serial {serial} is already used by request {id}")]
    SerialInUse { serial: String, id: u64 },
    #[error("no certificate with serial {serial}")]
    UnknownSerial { serial: String },
    #[error(
        "certificate {serial} (request {id}) is {disposition}; only issued certificates can be revoked"
    )]
    NotIssued {
        serial: String,
        id: u64,
        disposition: Disposition,
    },
    #[error("certificate {serial} was already revoked at {at} (reason {reason})")]
    AlreadyRevoked {
        serial: String,
        at: String,
        reason: u8,
    },
    #[error("revocation reason {reason} is not a CRLReason (RFC 5280 5.3.1: 0-6 or 8-10)")]
    InvalidReason { reason: u8 },
    #[error(transparent)]
    InvalidSerial(#[from] InvalidSerial),
    #[error("the database's group commit: {0}")]
    Committer(String),
}

/// SHA-256 of the request bytes, lower-case hex: the key that makes a
/// resubmission of the same bytes find the earlier request.
pub fn fingerprint(request: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, request);
    crate::pki::template_ext::hex(digest.as_ref())
}

/// Brings a serial number written by a person or another tool to the form
/// the database keys on, the form `crate::pki::template_ext::serial_hex`
/// gives for a certificate: lower-case hex, two digits per byte, no leading
/// zero bytes ("00" for zero). Accepts upper case, an optional `0x`, and
/// colons or spaces between digits (as openssl and certutil print serials).
pub fn normalize_serial(text: &str) -> Result<String, InvalidSerial> {
    let bad = |problem: &str| InvalidSerial {
        serial: text.to_string(),
        problem: problem.to_string(),
    };
    let trimmed = text.trim();
    let body = trimmed
        .strip_prefix("0x")
        .or_else(|| trimmed.strip_prefix("0X"))
        .unwrap_or(trimmed);
    let mut digits = String::with_capacity(body.len());
    for c in body.chars() {
        match c {
            ':' | ' ' => {}
            c if c.is_ascii_hexdigit() => digits.push(c.to_ascii_lowercase()),
            _ => {
                return Err(bad(
                    "expected hexadecimal digits, optionally separated by ':'",
                ));
            }
        }
    }
    if digits.is_empty() {
        return Err(bad("no hexadecimal digits"));
    }
    let significant = digits.trim_start_matches('0');
    let mut out = String::with_capacity(significant.len() + 2);
    if significant.is_empty() {
        out.push_str("00");
    } else {
        if significant.len() % 2 == 1 {
            out.push('0');
        }
        out.push_str(significant);
    }
    if out.len() / 2 > MAX_SERIAL_OCTETS {
        return Err(bad("longer than 20 octets (RFC 5280 4.1.2.2)"));
    }
    Ok(out)
}

/// Whether `reason` is a CRLReason code (RFC 5280 5.3.1; 7 is unassigned).
pub fn is_crl_reason(reason: u8) -> bool {
    matches!(reason, 0..=6 | 8..=10)
}

/// The request database. One connection; open one per process or thread
/// (the type is `Send`, not `Sync`).
pub struct Database {
    conn: Connection,
    path: PathBuf,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("path", &self.path)
            .finish()
    }
}

/// The columns of `requests`, in the order [`record_from_row`] reads them.
const COLUMNS: &str = "id, fingerprint, requester, requester_sid, template, request, \
     disposition, hresult, reason, certificate, serial, profile, renewal_of, approved, \
     submitted_at, resolved_at, not_after, revoked_at, revocation_reason, authentication, method";

impl Database {
    /// Opens the database at `path`, creating the file (mode 0600: it holds
    /// requests and the decisions about them) and the schema if needed, and
    /// migrating an older schema.
    pub fn open(path: &Path) -> Result<Database, DbError> {
        let fail = |kind| DbError {
            path: path.to_path_buf(),
            kind,
        };
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(fail(DbErrorKind::Create(e))),
        }
        let mut conn = Connection::open(path).map_err(|e| fail(sqlite("opening", e)))?;
        // Every write transaction takes the write lock when it begins: a
        // deferred one that reads first cannot upgrade once another
        // connection committed, and would fail with SQLITE_BUSY at once.
        conn.set_transaction_behavior(TransactionBehavior::Immediate);
        let db = Database {
            conn,
            path: path.to_path_buf(),
        };
        db.configure()?;
        db.migrate()?;
        Ok(db)
    }

    /// The file this database lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, kind: DbErrorKind) -> DbError {
        DbError {
            path: self.path.clone(),
            kind,
        }
    }

    fn sql(&self, what: &str) -> impl Fn(rusqlite::Error) -> DbError + '_ {
        let what = what.to_string();
        move |e| self.err(sqlite(&what, e))
    }

    fn configure(&self) -> Result<(), DbError> {
        self.conn
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(self.sql("setting busy_timeout"))?;
        let mode: String = self
            .conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(self.sql("setting journal_mode=WAL"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(self.err(DbErrorKind::NotWal { mode }));
        }
        self.conn
            .pragma_update(None, "synchronous", "FULL")
            .map_err(self.sql("setting synchronous=FULL"))?;
        self.conn
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(self.sql("enabling foreign keys"))?;
        self.conn.set_prepared_statement_cache_capacity(64);
        Ok(())
    }

    /// Applies the migrations the file lacks, in one transaction, so that two
    /// processes opening a new file at once do not both create the schema.
    fn migrate(&self) -> Result<(), DbError> {
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(self.sql("starting the schema migration"))?;
        let found: u32 = tx
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(self.sql("reading the schema version"))?;
        if found > SCHEMA_VERSION {
            return Err(self.err(DbErrorKind::TooNew {
                found,
                supported: SCHEMA_VERSION,
            }));
        }
        for (from, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            tx.execute_batch(sql)
                .map_err(self.sql(&format!("migrating the schema from version {from}")))?;
        }
        if found < SCHEMA_VERSION {
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(self.sql("writing the schema version"))?;
        }
        tx.commit()
            .map_err(self.sql("committing the schema migration"))
    }

    /// Runs `f` in one write transaction for the CA's other tables (the
    /// NDES role's); it is rolled back if `f` fails.
    pub(crate) fn write_other<T>(
        &self,
        what: &str,
        f: impl FnOnce(&Connection) -> Result<T, rusqlite::Error>,
    ) -> Result<T, DbError> {
        self.write(what, |c| f(c).map_err(self.sql(what)))
    }

    /// Reads the CA's other tables (the NDES role's).
    pub(crate) fn read_other<T>(
        &self,
        what: &str,
        f: impl FnOnce(&Connection) -> Result<T, rusqlite::Error>,
    ) -> Result<T, DbError> {
        f(&self.conn).map_err(self.sql(what))
    }

    /// Runs `f` in one write transaction; it is rolled back if `f` fails.
    /// Inside a group ([`Database::begin_group`]) it is a savepoint of the
    /// group's transaction instead, rolled back alone if `f` fails, and made
    /// durable by the group's commit.
    pub(crate) fn write<T>(
        &self,
        what: &str,
        f: impl FnOnce(&Connection) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        if !self.conn.is_autocommit() {
            self.conn
                .prepare_cached("SAVEPOINT write")
                .and_then(|mut s| s.execute([]).map(drop))
                .map_err(self.sql(&format!("{what}: starting a savepoint")))?;
            return match f(&self.conn) {
                Ok(out) => {
                    self.conn
                        .prepare_cached("RELEASE write")
                        .and_then(|mut s| s.execute([]).map(drop))
                        .map_err(self.sql(&format!("{what}: releasing its savepoint")))?;
                    Ok(out)
                }
                Err(e) => {
                    // Undoes this write only; the group's others stand.
                    let _ = self.conn.execute_batch("ROLLBACK TO write; RELEASE write");
                    Err(e)
                }
            };
        }
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(self.sql(&format!("{what}: starting a transaction")))?;
        let out = f(&tx)?;
        tx.commit()
            .map_err(self.sql(&format!("{what}: committing")))?;
        Ok(out)
    }

    /// Begins the transaction of a group of writes (see `super::commit`):
    /// the writes run in it as savepoints until [`Database::commit_group`].
    pub(crate) fn begin_group(&self) -> Result<(), DbError> {
        self.conn
            .prepare_cached("BEGIN IMMEDIATE")
            .and_then(|mut s| s.execute([]).map(drop))
            .map_err(self.sql("starting a group of writes"))
    }

    /// Commits the group's transaction durably (`synchronous=FULL`); on
    /// failure it is rolled back whole, so that no write of it is kept.
    pub(crate) fn commit_group(&self) -> Result<(), DbError> {
        let committed = self
            .conn
            .prepare_cached("COMMIT")
            .and_then(|mut s| s.execute([]).map(drop))
            .map_err(self.sql("committing a group of writes"));
        if committed.is_err() && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        committed
    }

    /// A new request's fingerprint (what makes a resubmission the same
    /// request) and the normalized serial of the certificate it renews.
    fn request_keys(&self, new: &NewRequest<'_>) -> Result<(String, Option<String>), DbError> {
        let renewal_of = new
            .renewal_of
            .map(normalize_serial)
            .transpose()
            .map_err(|e| self.err(e.into()))?;
        Ok((fingerprint(new.request), renewal_of))
    }

    /// Records a request, or finds the earlier record of the same bytes: a
    /// client that resubmits (a retry after a lost response) gets the outcome
    /// it was given the first time, never a second certificate. Returns the
    /// record and whether it was created now. A new record is Pending until
    /// the caller records the decision.
    ///
    /// The same bytes from a different account are refused: a request is not
    /// a credential, and one account must not learn or collect the outcome
    /// of another's request.
    pub fn submit(
        &self,
        new: NewRequest<'_>,
        now: OffsetDateTime,
    ) -> Result<(RequestRecord, bool), DbError> {
        let (fp, renewal_of) = self.request_keys(&new)?;
        self.write("submitting a request", |tx| {
            self.submit_in(tx, &new, &fp, renewal_of.as_deref(), now)
        })
    }

    /// [`Database::submit`] inside `tx`, with the fingerprint and the
    /// normalized serial of the renewed certificate.
    fn submit_in(
        &self,
        tx: &Connection,
        new: &NewRequest<'_>,
        fp: &str,
        renewal_of: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<(RequestRecord, bool), DbError> {
        let select = format!("SELECT {COLUMNS} FROM requests WHERE fingerprint = ?1");
        // Looked up first rather than with an upsert: a failed insert
        // would still consume an AUTOINCREMENT ID. The write lock taken
        // at BEGIN IMMEDIATE keeps the look-up and the insert atomic;
        // UNIQUE(fingerprint) guards the rest.
        let existing = query_one(tx, &select, [fp]).map_err(self.sql("looking up the request"))?;
        if let Some(record) = existing {
            // sAMAccountName compares case-insensitively in AD.
            if !record.requester.eq_ignore_ascii_case(new.requester) {
                return Err(self.err(DbErrorKind::RequesterMismatch {
                    id: record.id,
                    stored: record.requester,
                    given: new.requester.to_string(),
                }));
            }
            return Ok((record, false));
        }
        cached_execute(
            tx,
            "INSERT INTO requests (fingerprint, requester, requester_sid, template, \
             request, disposition, renewal_of, submitted_at, authentication, method) \
             VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7, ?8, ?9)",
            params![
                fp,
                new.requester,
                new.requester_sid,
                new.template,
                new.request,
                renewal_of,
                now.unix_timestamp(),
                new.authentication.map(|a| a.columns().0),
                new.authentication.and_then(|a| a.columns().1)
            ],
        )
        .map_err(self.sql("inserting the request"))?;
        let record = query_one(tx, &select, [fp])
            .map_err(self.sql("reading the request back"))?
            .ok_or_else(|| {
                self.err(sqlite(
                    "reading the request back",
                    rusqlite::Error::QueryReturnedNoRows,
                ))
            })?;
        Ok((record, true))
    }

    /// Records a new request together with what was decided about it, in
    /// one write (one durable commit in a group, see `super::commit`): a
    /// request issued at once costs one commit, not one for the submission
    /// and another for the certificate, and a certificate is never recorded
    /// without its request nor a request left undecided. The same bytes
    /// submitted before are handled as [`Database::submit`] handles them:
    /// from another account refused; decided, returned unchanged as
    /// [`Submitted::Earlier`]; stored but never decided, decided now.
    ///
    /// A serial already taken fails with [`DbErrorKind::SerialInUse`] and
    /// records nothing: the write is rolled back whole, the AUTOINCREMENT
    /// counter with it, so no request ID is used up.
    pub fn submit_decided(
        &self,
        new: NewRequest<'_>,
        outcome: Outcome<'_>,
        now: OffsetDateTime,
    ) -> Result<Submitted, DbError> {
        let (fp, renewal_of) = self.request_keys(&new)?;
        self.write("recording a request and its outcome", |tx| {
            let (record, created) = self.submit_in(tx, &new, &fp, renewal_of.as_deref(), now)?;
            if !created && (record.disposition != Disposition::Pending || record.profile.is_some())
            {
                return Ok(Submitted::Earlier(Box::new(record)));
            }
            let key = i64::try_from(record.id)
                .map_err(|_| self.err(DbErrorKind::UnknownRequest { id: record.id }))?;
            match outcome {
                Outcome::Issued {
                    certificate,
                    serial,
                    not_after,
                } => {
                    // A bad serial fails the write, which then records nothing.
                    let serial = normalize_serial(serial).map_err(|e| self.err(e.into()))?;
                    self.issue_in(tx, key, certificate, serial, not_after, false, now)?
                }
                Outcome::Pending {
                    profile_json,
                    reason,
                } => self.pend_in(tx, key, profile_json, reason)?,
                Outcome::Denied { hresult, reason } => {
                    self.deny_in(tx, key, hresult, reason, now)?
                }
            }
            Ok(Submitted::Recorded { id: record.id })
        })
    }

    /// The record of the request whose bytes are `request`, if it was
    /// submitted before: a resubmission is answered from it without being
    /// decided or signed again.
    pub fn by_request(&self, request: &[u8]) -> Result<Option<RequestRecord>, DbError> {
        query_one(
            &self.conn,
            &format!("SELECT {COLUMNS} FROM requests WHERE fingerprint = ?1"),
            [fingerprint(request)],
        )
        .map_err(self.sql("looking up the request"))
    }

    /// Records a request refused because its sender could not be
    /// authenticated (`authentication` says how it tried), denied at once
    /// with `hresult` and `reason`. Its requester is [`UNAUTHENTICATED`] and
    /// its fingerprint unique to it: the same bytes sent again by an
    /// authenticated requester are a new request.
    pub fn record_unauthenticated(
        &self,
        template: Option<&str>,
        request: &[u8],
        authentication: Authentication,
        hresult: u32,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<RequestRecord, DbError> {
        let mut nonce = [0u8; 16];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| {
            self.err(sqlite(
                "drawing a random fingerprint",
                rusqlite::Error::InvalidQuery,
            ))
        })?;
        let fp = format!("unauthenticated:{}", crate::pki::template_ext::hex(&nonce));
        self.write("recording a refused authentication", |tx| {
            cached_execute(
                tx,
                "INSERT INTO requests (fingerprint, requester, template, request, disposition, \
                 hresult, reason, submitted_at, resolved_at, authentication, method) \
                 VALUES (?1, ?2, ?3, ?4, 'denied', ?5, ?6, ?7, ?7, ?8, ?9)",
                params![
                    fp,
                    UNAUTHENTICATED,
                    template,
                    request,
                    hresult,
                    reason,
                    now.unix_timestamp(),
                    authentication.columns().0,
                    authentication.columns().1
                ],
            )
            .map_err(self.sql("inserting the refused request"))?;
            let select = format!("SELECT {COLUMNS} FROM requests WHERE fingerprint = ?1");
            query_one(tx, &select, [&fp])
                .map_err(self.sql("reading the refused request back"))?
                .ok_or_else(|| {
                    self.err(sqlite(
                        "reading the refused request back",
                        rusqlite::Error::QueryReturnedNoRows,
                    ))
                })
        })
    }

    /// The disposition of request `id`, which must exist; inside `tx`.
    fn disposition_of(&self, tx: &Connection, id: u64) -> Result<Disposition, DbError> {
        let Ok(key) = i64::try_from(id) else {
            return Err(self.err(DbErrorKind::UnknownRequest { id }));
        };
        cached_query_row(
            tx,
            "SELECT disposition FROM requests WHERE id = ?1",
            [key],
            |row| row.get(0),
        )
        .optional()
        .map_err(self.sql("reading the request"))?
        .ok_or_else(|| self.err(DbErrorKind::UnknownRequest { id }))
    }

    /// Checks that request `id` exists and is pending; inside `tx`.
    fn require_pending(&self, tx: &Connection, id: u64) -> Result<i64, DbError> {
        let disposition = self.disposition_of(tx, id)?;
        if disposition != Disposition::Pending {
            return Err(self.err(DbErrorKind::NotPending { id, disposition }));
        }
        // disposition_of succeeded, so the ID fits.
        i64::try_from(id).map_err(|_| self.err(DbErrorKind::UnknownRequest { id }))
    }

    /// Records the certificate issued for pending request `id` (at once or
    /// after a CA manager's approval).
    pub fn record_issued(
        &self,
        id: u64,
        certificate: &[u8],
        serial: &str,
        not_after: OffsetDateTime,
        approved: bool,
        now: OffsetDateTime,
    ) -> Result<(), DbError> {
        let serial = normalize_serial(serial).map_err(|e| self.err(e.into()))?;
        self.write("recording an issued certificate", |tx| {
            let key = self.require_pending(tx, id)?;
            self.issue_in(tx, key, certificate, serial, not_after, approved, now)
        })
    }

    /// [`Database::record_issued`] inside `tx`, for a pending request and a
    /// normalized serial.
    #[allow(clippy::too_many_arguments)]
    fn issue_in(
        &self,
        tx: &Connection,
        key: i64,
        certificate: &[u8],
        serial: String,
        not_after: OffsetDateTime,
        approved: bool,
        now: OffsetDateTime,
    ) -> Result<(), DbError> {
        let holder: Option<i64> = cached_query_row(
            tx,
            "SELECT id FROM requests WHERE serial = ?1",
            [&serial],
            |row| row.get(0),
        )
        .optional()
        .map_err(self.sql("checking the serial"))?;
        if let Some(other) = holder {
            return Err(self.err(DbErrorKind::SerialInUse {
                serial,
                id: other.unsigned_abs(),
            }));
        }
        let reason = if approved {
            "Issued after approval by a CA manager"
        } else {
            "Issued"
        };
        cached_execute(
            tx,
            "UPDATE requests SET disposition = 'issued', certificate = ?2, serial = ?3, \
             not_after = ?4, approved = ?5, resolved_at = ?6, reason = ?7, hresult = NULL \
             WHERE id = ?1",
            params![
                key,
                certificate,
                serial,
                not_after.unix_timestamp(),
                approved,
                now.unix_timestamp(),
                reason
            ],
        )
        .map_err(self.sql("recording the certificate"))?;
        Ok(())
    }

    /// Keeps request `id` pending (CA manager approval required) with the
    /// profile that will be issued on approval and the message for the client.
    pub fn record_pending(&self, id: u64, profile_json: &str, reason: &str) -> Result<(), DbError> {
        self.write("recording a pending request", |tx| {
            let key = self.require_pending(tx, id)?;
            self.pend_in(tx, key, profile_json, reason)
        })
    }

    /// [`Database::record_pending`] inside `tx`, for a pending request.
    fn pend_in(
        &self,
        tx: &Connection,
        key: i64,
        profile_json: &str,
        reason: &str,
    ) -> Result<(), DbError> {
        cached_execute(
            tx,
            "UPDATE requests SET profile = ?2, reason = ?3 WHERE id = ?1",
            params![key, profile_json, reason],
        )
        .map_err(self.sql("recording the pending request"))?;
        Ok(())
    }

    /// Denies pending request `id` with an HRESULT ([MS-WCCE] 2.2.2.9, e.g.
    /// 0x80094014 ADMIN_DENIED_REQUEST) and a reason. A denial is final.
    pub fn record_denied(
        &self,
        id: u64,
        hresult: u32,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<(), DbError> {
        self.write("recording a denial", |tx| {
            let key = self.require_pending(tx, id)?;
            self.deny_in(tx, key, hresult, reason, now)
        })
    }

    /// [`Database::record_denied`] inside `tx`, for a pending request.
    fn deny_in(
        &self,
        tx: &Connection,
        key: i64,
        hresult: u32,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<(), DbError> {
        cached_execute(
            tx,
            "UPDATE requests SET disposition = 'denied', hresult = ?2, reason = ?3, \
             resolved_at = ?4 WHERE id = ?1",
            params![key, hresult, reason, now.unix_timestamp()],
        )
        .map_err(self.sql("recording the denial"))?;
        Ok(())
    }

    /// Request `id`, if there is one.
    pub fn get(&self, id: u64) -> Result<Option<RequestRecord>, DbError> {
        let Ok(key) = i64::try_from(id) else {
            return Ok(None);
        };
        query_one(
            &self.conn,
            &format!("SELECT {COLUMNS} FROM requests WHERE id = ?1"),
            [key],
        )
        .map_err(self.sql(&format!("reading request {id}")))
    }

    /// The request whose certificate has serial `serial` (any form
    /// [`normalize_serial`] accepts).
    pub fn by_serial(&self, serial: &str) -> Result<Option<RequestRecord>, DbError> {
        let serial = normalize_serial(serial).map_err(|e| self.err(e.into()))?;
        query_one(
            &self.conn,
            &format!("SELECT {COLUMNS} FROM requests WHERE serial = ?1"),
            [&serial],
        )
        .map_err(self.sql(&format!("looking up serial {serial}")))
    }

    /// Whether a certificate with this serial was issued (the issuer draws
    /// random serials and must not repeat one).
    pub fn serial_exists(&self, serial: &str) -> Result<bool, DbError> {
        let serial = normalize_serial(serial).map_err(|e| self.err(e.into()))?;
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM requests WHERE serial = ?1)",
                [&serial],
                |row| row.get(0),
            )
            .map_err(self.sql(&format!("looking up serial {serial}")))
    }

    /// Requests in ID order.
    pub fn list(&self, filter: ListFilter) -> Result<Vec<RequestRecord>, DbError> {
        let condition = match filter {
            ListFilter::All => "",
            ListFilter::Pending => "WHERE disposition = 'pending'",
        };
        let sql = format!("SELECT {COLUMNS} FROM requests {condition} ORDER BY id");
        let read = || -> rusqlite::Result<Vec<RequestRecord>> {
            let mut stmt = self.conn.prepare(&sql)?;
            let rows = stmt.query_map([], record_from_row)?;
            rows.collect()
        };
        read().map_err(self.sql("listing requests"))
    }

    /// Revokes the issued certificate `serial` with CRLReason `reason` (RFC
    /// 5280 5.3.1). Returns the updated record. Only an issued certificate
    /// can be revoked; a second revocation is refused with the date of the
    /// first, so that an admin command never silently moves a revocation date.
    pub fn revoke(
        &self,
        serial: &str,
        reason: u8,
        now: OffsetDateTime,
    ) -> Result<RequestRecord, DbError> {
        if !is_crl_reason(reason) {
            return Err(self.err(DbErrorKind::InvalidReason { reason }));
        }
        let serial = normalize_serial(serial).map_err(|e| self.err(e.into()))?;
        self.write("revoking a certificate", |tx| {
            let select = format!("SELECT {COLUMNS} FROM requests WHERE serial = ?1");
            let record = query_one(tx, &select, [&serial])
                .map_err(self.sql("looking up the certificate"))?
                .ok_or_else(|| {
                    self.err(DbErrorKind::UnknownSerial {
                        serial: serial.clone(),
                    })
                })?;
            match record.disposition {
                Disposition::Issued => {}
                Disposition::Revoked => {
                    return Err(self.err(DbErrorKind::AlreadyRevoked {
                        serial: serial.clone(),
                        at: record
                            .revoked_at
                            .and_then(|t| t.format(&Rfc3339).ok())
                            .unwrap_or_else(|| "an unrecorded time".to_string()),
                        reason: record.revocation_reason.unwrap_or_default(),
                    }));
                }
                // Pending and denied requests carry no serial today; kept
                // so a future disposition cannot be revoked by accident.
                disposition => {
                    return Err(self.err(DbErrorKind::NotIssued {
                        serial: serial.clone(),
                        id: record.id,
                        disposition,
                    }));
                }
            }
            cached_execute(
                tx,
                "UPDATE requests SET disposition = 'revoked', revoked_at = ?2, \
                 revocation_reason = ?3 WHERE serial = ?1",
                params![serial, now.unix_timestamp(), reason],
            )
            .map_err(self.sql("recording the revocation"))?;
            query_one(tx, &select, [&serial])
                .map_err(self.sql("reading the revoked certificate back"))?
                .ok_or_else(|| self.err(DbErrorKind::UnknownSerial { serial }))
        })
    }

    /// Every revoked certificate, oldest revocation first: the entries of
    /// the next CRL. Expired certificates stay listed (RFC 5280 3.3 allows
    /// dropping them; keeping them is never wrong).
    pub fn revoked(&self) -> Result<Vec<RevokedEntry>, DbError> {
        let read = || -> rusqlite::Result<Vec<RevokedEntry>> {
            let mut stmt = self.conn.prepare(
                "SELECT serial, revoked_at, revocation_reason FROM requests \
                 WHERE disposition = 'revoked' ORDER BY revoked_at, serial",
            )?;
            let rows = stmt.query_map([], |row| {
                Ok(RevokedEntry {
                    serial: row.get(0)?,
                    revoked_at: time_column(row, 1)?,
                    reason: row.get(2)?,
                })
            })?;
            rows.collect()
        };
        read().map_err(self.sql("listing revoked certificates"))
    }

    /// The next CRL number (RFC 5280 5.2.3: monotonically increasing). The
    /// counter is in the file, so it increases across restarts and between
    /// processes; the first number is 1.
    pub fn next_crl_number(&self) -> Result<u64, DbError> {
        self.next_crl_number_above(0)
    }

    /// The next CRL number, and above `floor` in any case: the number of a
    /// CRL already published (a CRL file older than this database, or one
    /// written by an earlier version that did not count it here) is never
    /// issued again (RFC 5280 5.2.3).
    pub fn next_crl_number_above(&self, floor: u64) -> Result<u64, DbError> {
        let floor = i64::try_from(floor).unwrap_or(i64::MAX - 1);
        self.write("drawing a CRL number", |tx| {
            let number: i64 = tx
                .query_row(
                    "UPDATE crl_state SET last_number = MAX(last_number, ?1) + 1 WHERE id = 1 \
                     RETURNING last_number",
                    [floor],
                    |row| row.get(0),
                )
                .map_err(self.sql("incrementing the CRL number"))?;
            Ok(number.unsigned_abs())
        })
    }
}

fn sqlite(what: &str, source: rusqlite::Error) -> DbErrorKind {
    let what = what.to_string();
    match source.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            DbErrorKind::NotADatabase { what, source }
        }
        _ => DbErrorKind::Sqlite { what, source },
    }
}

/// Runs a statement through the connection's cache of prepared statements:
/// the issuance path runs the same few statements for every request, and
/// parsing them anew each time was a tenth of the database's CPU.
fn cached_execute<P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

/// [`Connection::query_row`] through the cache of prepared statements.
fn cached_query_row<T, P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
    f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.prepare_cached(sql)?.query_row(params, f)
}

fn query_one<P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
) -> rusqlite::Result<Option<RequestRecord>> {
    cached_query_row(conn, sql, params, record_from_row).optional()
}

fn conversion(index: usize, problem: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Integer, problem.into())
}

fn time_column(row: &Row<'_>, index: usize) -> rusqlite::Result<OffsetDateTime> {
    let seconds: i64 = row.get(index)?;
    OffsetDateTime::from_unix_timestamp(seconds)
        .map_err(|e| conversion(index, format!("timestamp {seconds}: {e}")))
}

fn optional_time_column(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<OffsetDateTime>> {
    let seconds: Option<i64> = row.get(index)?;
    seconds
        .map(|s| {
            OffsetDateTime::from_unix_timestamp(s)
                .map_err(|e| conversion(index, format!("timestamp {s}: {e}")))
        })
        .transpose()
}

fn record_from_row(row: &Row<'_>) -> rusqlite::Result<RequestRecord> {
    let id: i64 = row.get(0)?;
    Ok(RequestRecord {
        id: u64::try_from(id).map_err(|_| conversion(0, format!("request ID {id}")))?,
        fingerprint: row.get(1)?,
        requester: row.get(2)?,
        requester_sid: row.get(3)?,
        template: row.get(4)?,
        request: row.get(5)?,
        disposition: row.get(6)?,
        hresult: row.get(7)?,
        reason: row.get(8)?,
        certificate: row.get(9)?,
        serial: row.get(10)?,
        profile: row.get(11)?,
        renewal_of: row.get(12)?,
        approved: row.get(13)?,
        submitted_at: time_column(row, 14)?,
        resolved_at: optional_time_column(row, 15)?,
        not_after: optional_time_column(row, 16)?,
        revoked_at: optional_time_column(row, 17)?,
        revocation_reason: row.get(18)?,
        authentication: {
            let authentication: Option<Authentication> = row.get(19)?;
            let method: Option<String> = row.get(20)?;
            match (authentication, method.as_deref()) {
                (Some(Authentication::Kerberos), Some("rpc")) => Some(Authentication::Rpc),
                (a, _) => a,
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use proptest::prelude::*;
    use time::macros::datetime;

    use super::*;
    use crate::pki::template_ext::serial_hex;

    const T0: OffsetDateTime = datetime!(2025-03-01 12:00:00 UTC);

    fn open_temp() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join("ca.db")).unwrap();
        (dir, db)
    }

    fn request<'a>(requester: &'a str, bytes: &'a [u8]) -> NewRequest<'a> {
        NewRequest {
            requester,
            requester_sid: Some("S-1-5-21-1-2-3-1104"),
            template: Some("Machine"),
            request: bytes,
            renewal_of: None,
            authentication: Some(Authentication::Password),
        }
    }

    #[test]
    fn a_version_1_file_gains_the_authentication_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute(
                "INSERT INTO requests (fingerprint, requester, request, disposition, submitted_at) \
                 VALUES ('f', 'WS01$', x'00', 'pending', 0)",
                [],
            )
            .unwrap();
        }
        let db = Database::open(&path).unwrap();
        let old = db.list(ListFilter::All).unwrap();
        assert_eq!(old.len(), 1);
        assert_eq!(old[0].authentication, None);
        let mut new = request("WS01$", b"kerberos request");
        new.authentication = Some(Authentication::Kerberos);
        let (rec, created) = db.submit(new, T0).unwrap();
        assert!(created);
        assert_eq!(rec.authentication, Some(Authentication::Kerberos));
        // The CHECK constraint keeps unknown names out.
        let bad = db.conn.execute(
            "UPDATE requests SET authentication = 'ntlm' WHERE id = ?1",
            [rec.id as i64],
        );
        assert!(bad.is_err());
    }

    #[test]
    fn rpc_requests_are_kerberos_through_the_rpc_door() {
        let (_d, db) = open_temp();
        let mut new = request("WS01$", b"rpc request");
        new.authentication = Some(Authentication::Rpc);
        let (rec, _) = db.submit(new, T0).unwrap();
        assert_eq!(rec.authentication, Some(Authentication::Rpc));
        let (auth, method): (String, Option<String>) = db
            .conn
            .query_row(
                "SELECT authentication, method FROM requests WHERE id = ?1",
                [rec.id as i64],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(
            (auth.as_str(), method.as_deref()),
            ("kerberos", Some("rpc"))
        );
        let mut ces = request("WS01$", b"ces request");
        ces.authentication = Some(Authentication::Kerberos);
        let (rec, _) = db.submit(ces, T0).unwrap();
        assert_eq!(rec.authentication, Some(Authentication::Kerberos));
        let bad = db.conn.execute(
            "UPDATE requests SET method = 'dcom' WHERE id = ?1",
            [rec.id as i64],
        );
        assert!(bad.is_err(), "the CHECK constraint keeps unknown doors out");
    }

    #[test]
    fn a_refused_authentication_is_a_denied_request_that_captures_nothing() {
        let (_d, db) = open_temp();
        let bytes = b"the same request bytes";
        let refused = db
            .record_unauthenticated(
                Some("Machine"),
                bytes,
                Authentication::Kerberos,
                0x8007_0005,
                "replayed authenticator",
                T0,
            )
            .unwrap();
        assert_eq!(refused.disposition, Disposition::Denied);
        assert_eq!(refused.requester, UNAUTHENTICATED);
        assert_eq!(refused.hresult, Some(0x8007_0005));
        assert_eq!(refused.authentication, Some(Authentication::Kerberos));
        assert_eq!(refused.resolved_at, Some(T0));
        // The same bytes twice are two records, and the authenticated
        // sender's submission is a new pending request of its own.
        let again = db
            .record_unauthenticated(None, bytes, Authentication::Kerberos, 0x8007_0005, "x", T0)
            .unwrap();
        assert_ne!(again.id, refused.id);
        let (rec, created) = db.submit(request("WS01$", bytes), T0).unwrap();
        assert!(created);
        assert_eq!(rec.disposition, Disposition::Pending);
        assert_eq!(rec.fingerprint, fingerprint(bytes));
    }

    fn issued(db: &Database, bytes: &[u8], serial: &str) -> RequestRecord {
        let (rec, _) = db.submit(request("WS01$", bytes), T0).unwrap();
        db.record_issued(
            rec.id,
            b"cert",
            serial,
            T0 + time::Duration::days(365),
            false,
            T0,
        )
        .unwrap();
        db.get(rec.id).unwrap().unwrap()
    }

    #[test]
    fn new_file_is_private_wal_and_at_the_current_schema() {
        let (dir, db) = open_temp();
        let mode = std::fs::metadata(dir.path().join("ca.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let journal: String = db
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(journal, "wal");
        let sync: i64 = db
            .conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "synchronous=FULL");
        let fk: i64 = db
            .conn
            .pragma_query_value(None, "foreign_keys", |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1);
        let version: u32 = db
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        assert_eq!(db.path(), dir.path().join("ca.db"));
    }

    #[test]
    fn submit_creates_a_pending_record_then_finds_it_again() {
        let (_dir, db) = open_temp();
        let new = NewRequest {
            renewal_of: Some("0A:BC"),
            authentication: Some(Authentication::Renewal),
            ..request("WS01$", b"pkcs10")
        };
        let (first, created) = db.submit(new, T0).unwrap();
        assert!(created);
        assert_eq!(first.id, 1);
        assert_eq!(first.disposition, Disposition::Pending);
        assert_eq!(first.fingerprint, fingerprint(b"pkcs10"));
        assert_eq!(first.fingerprint.len(), 64);
        assert_eq!(first.requester, "WS01$");
        assert_eq!(first.requester_sid.as_deref(), Some("S-1-5-21-1-2-3-1104"));
        assert_eq!(first.template.as_deref(), Some("Machine"));
        assert_eq!(first.request, b"pkcs10");
        assert_eq!(first.renewal_of.as_deref(), Some("0abc"));
        assert_eq!(first.submitted_at, T0);
        assert_eq!(first.resolved_at, None);
        assert!(!first.approved);

        // A retry, even later and with a differently cased account name.
        let (again, created) = db
            .submit(request("ws01$", b"pkcs10"), T0 + time::Duration::hours(1))
            .unwrap();
        assert!(!created);
        assert_eq!(again, first);

        let (other, created) = db.submit(request("WS01$", b"other"), T0).unwrap();
        assert!(created);
        assert_eq!(other.id, 2);
        assert_eq!(db.list(ListFilter::All).unwrap().len(), 2);
    }

    #[test]
    fn the_same_request_from_another_account_is_refused() {
        let (_dir, db) = open_temp();
        db.submit(request("WS01$", b"pkcs10"), T0).unwrap();
        let err = db.submit(request("WS02$", b"pkcs10"), T0).unwrap_err();
        assert!(
            matches!(err.kind, DbErrorKind::RequesterMismatch { id: 1, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("ca.db"), "{err}");
    }

    #[test]
    fn issue_at_once() {
        let (_dir, db) = open_temp();
        let (rec, _) = db.submit(request("WS01$", b"r"), T0).unwrap();
        let not_after = T0 + time::Duration::days(365);
        db.record_issued(rec.id, b"DER", "00:1F:AB", not_after, false, T0)
            .unwrap();
        let got = db.get(rec.id).unwrap().unwrap();
        assert_eq!(got.disposition, Disposition::Issued);
        assert_eq!(got.disposition.code(), 3);
        assert_eq!(got.certificate.as_deref(), Some(&b"DER"[..]));
        assert_eq!(got.serial.as_deref(), Some("1fab"));
        assert_eq!(got.not_after, Some(not_after));
        assert_eq!(got.resolved_at, Some(T0));
        assert_eq!(got.reason, "Issued");
        assert!(!got.approved);
        assert_eq!(db.by_serial("1FAB").unwrap(), Some(got));
        assert!(db.serial_exists("001fab").unwrap());
        assert!(!db.serial_exists("1fac").unwrap());
    }

    #[test]
    fn pending_then_approved() {
        let (_dir, db) = open_temp();
        let (rec, _) = db.submit(request("alice", b"r"), T0).unwrap();
        db.record_pending(rec.id, r#"{"days":365}"#, "Taken under submission")
            .unwrap();
        let pending = db.get(rec.id).unwrap().unwrap();
        assert_eq!(pending.disposition, Disposition::Pending);
        assert_eq!(pending.disposition.code(), 5);
        assert_eq!(pending.profile.as_deref(), Some(r#"{"days":365}"#));
        assert_eq!(pending.reason, "Taken under submission");
        assert_eq!(db.list(ListFilter::Pending).unwrap(), vec![pending]);

        let later = T0 + time::Duration::hours(2);
        db.record_issued(
            rec.id,
            b"DER",
            "42",
            later + time::Duration::days(1),
            true,
            later,
        )
        .unwrap();
        let got = db.get(rec.id).unwrap().unwrap();
        assert_eq!(got.disposition, Disposition::Issued);
        assert!(got.approved);
        assert_eq!(got.resolved_at, Some(later));
        assert_eq!(got.profile.as_deref(), Some(r#"{"days":365}"#));
        assert!(db.list(ListFilter::Pending).unwrap().is_empty());
        // A resubmission now answers with the certificate.
        let (again, created) = db.submit(request("alice", b"r"), later).unwrap();
        assert!(!created);
        assert_eq!(again.disposition, Disposition::Issued);
    }

    #[test]
    fn denied_stays_denied() {
        let (_dir, db) = open_temp();
        let (rec, _) = db.submit(request("alice", b"r"), T0).unwrap();
        db.record_denied(rec.id, 0x8009_4014, "Denied by a CA manager", T0)
            .unwrap();
        let got = db.get(rec.id).unwrap().unwrap();
        assert_eq!(got.disposition, Disposition::Denied);
        assert_eq!(got.disposition.code(), 2);
        assert_eq!(got.hresult, Some(0x8009_4014));
        assert_eq!(got.reason, "Denied by a CA manager");
        assert_eq!(got.resolved_at, Some(T0));

        let not_after = T0 + time::Duration::days(1);
        let cases: Vec<(&str, Result<(), DbError>)> = vec![
            (
                "issue",
                db.record_issued(rec.id, b"c", "01", not_after, true, T0),
            ),
            ("pend", db.record_pending(rec.id, "{}", "again")),
            ("deny", db.record_denied(rec.id, 1, "again", T0)),
        ];
        for (what, result) in cases {
            let err = result.unwrap_err();
            assert!(
                matches!(
                    err.kind,
                    DbErrorKind::NotPending {
                        disposition: Disposition::Denied,
                        ..
                    }
                ),
                "{what}: {err}"
            );
            assert!(err.to_string().contains("is denied, not pending"), "{err}");
        }
        assert_eq!(db.get(rec.id).unwrap().unwrap(), got);
        assert!(!db.serial_exists("01").unwrap());
    }

    #[test]
    fn transitions_from_issued_and_unknown_ids_are_refused() {
        let (_dir, db) = open_temp();
        let rec = issued(&db, b"r", "0a");
        let not_after = T0 + time::Duration::days(1);
        assert!(matches!(
            db.record_issued(rec.id, b"c", "0b", not_after, false, T0)
                .unwrap_err()
                .kind,
            DbErrorKind::NotPending {
                disposition: Disposition::Issued,
                ..
            }
        ));
        assert!(matches!(
            db.record_denied(rec.id, 1, "no", T0).unwrap_err().kind,
            DbErrorKind::NotPending { .. }
        ));
        for id in [0, 99, u64::MAX] {
            assert!(matches!(
                db.record_pending(id, "{}", "x").unwrap_err().kind,
                DbErrorKind::UnknownRequest { .. }
            ));
            assert_eq!(db.get(id).unwrap(), None);
        }
    }

    #[test]
    fn a_request_and_its_outcome_are_one_write() {
        let (_dir, db) = open_temp();
        let not_after = T0 + time::Duration::days(365);
        let issued_at_once = Outcome::Issued {
            certificate: b"DER",
            serial: "00:1F:AB",
            not_after,
        };
        let got = db
            .submit_decided(request("WS01$", b"r"), issued_at_once, T0)
            .unwrap();
        assert_eq!(got, Submitted::Recorded { id: 1 });
        let rec = db.get(1).unwrap().unwrap();
        assert_eq!(rec.disposition, Disposition::Issued);
        assert_eq!(rec.certificate.as_deref(), Some(&b"DER"[..]));
        assert_eq!(rec.serial.as_deref(), Some("1fab"));
        assert_eq!(rec.not_after, Some(not_after));
        assert_eq!(rec.submitted_at, T0);
        assert_eq!(rec.resolved_at, Some(T0));
        assert_eq!(rec.reason, "Issued");
        assert_eq!(rec.requester_sid.as_deref(), Some("S-1-5-21-1-2-3-1104"));

        // Decided before: returned unchanged, the new outcome not recorded.
        let denial = Outcome::Denied {
            hresult: 0x8009_4012,
            reason: "no",
        };
        let again = db
            .submit_decided(request("ws01$", b"r"), denial, T0)
            .unwrap();
        assert_eq!(again, Submitted::Earlier(Box::new(rec.clone())));
        assert_eq!(db.get(1).unwrap().unwrap(), rec);
        // From another account: refused.
        let err = db
            .submit_decided(request("WS02$", b"r"), denial, T0)
            .unwrap_err();
        assert!(
            matches!(err.kind, DbErrorKind::RequesterMismatch { id: 1, .. }),
            "{err}"
        );

        let pending = Outcome::Pending {
            profile_json: "{}",
            reason: "waits",
        };
        assert_eq!(
            db.submit_decided(request("alice", b"p"), pending, T0)
                .unwrap(),
            Submitted::Recorded { id: 2 }
        );
        let rec = db.get(2).unwrap().unwrap();
        assert_eq!(rec.disposition, Disposition::Pending);
        assert_eq!(rec.profile.as_deref(), Some("{}"));
        assert_eq!(rec.reason, "waits");
        assert_eq!(
            db.submit_decided(request("alice", b"d"), denial, T0)
                .unwrap(),
            Submitted::Recorded { id: 3 }
        );
        let rec = db.get(3).unwrap().unwrap();
        assert_eq!(rec.disposition, Disposition::Denied);
        assert_eq!(rec.hresult, Some(0x8009_4012));
        assert_eq!(rec.resolved_at, Some(T0));
    }

    #[test]
    fn a_request_stored_but_never_decided_is_decided_onto_its_record() {
        let (_dir, db) = open_temp();
        let (rec, _) = db.submit(request("WS01$", b"r"), T0).unwrap();
        let outcome = Outcome::Issued {
            certificate: b"DER",
            serial: "0b",
            not_after: T0 + time::Duration::days(1),
        };
        let got = db
            .submit_decided(request("WS01$", b"r"), outcome, T0)
            .unwrap();
        assert_eq!(got, Submitted::Recorded { id: rec.id });
        assert_eq!(
            db.get(rec.id).unwrap().unwrap().disposition,
            Disposition::Issued
        );
        assert_eq!(db.list(ListFilter::All).unwrap().len(), 1);
    }

    #[test]
    fn a_taken_serial_records_nothing_and_uses_up_no_request_id() {
        let (_dir, db) = open_temp();
        issued(&db, b"a", "0a");
        let outcome = |serial| Outcome::Issued {
            certificate: b"c",
            serial,
            not_after: T0 + time::Duration::days(1),
        };
        let err = db
            .submit_decided(request("WS01$", b"b"), outcome("0A"), T0)
            .unwrap_err();
        assert!(
            matches!(err.kind, DbErrorKind::SerialInUse { id: 1, .. }),
            "{err}"
        );
        assert_eq!(db.by_request(b"b").unwrap(), None);
        // Drawn again: the next ID, as if the first draw never happened.
        let got = db
            .submit_decided(request("WS01$", b"b"), outcome("0c"), T0)
            .unwrap();
        assert_eq!(got, Submitted::Recorded { id: 2 });
    }

    #[test]
    fn a_taken_serial_inside_a_group_is_rolled_back_alone() {
        let (_dir, db) = open_temp();
        issued(&db, b"a", "0a");
        db.begin_group().unwrap();
        let outcome = |serial| Outcome::Issued {
            certificate: b"c",
            serial,
            not_after: T0 + time::Duration::days(1),
        };
        assert!(
            db.submit_decided(request("WS01$", b"b"), outcome("0a"), T0)
                .is_err()
        );
        let other = db
            .submit_decided(request("WS01$", b"x"), outcome("0d"), T0)
            .unwrap();
        db.commit_group().unwrap();
        assert_eq!(other, Submitted::Recorded { id: 2 });
        assert_eq!(db.by_request(b"b").unwrap(), None);
        assert_eq!(db.list(ListFilter::All).unwrap().len(), 2);
    }

    #[test]
    fn a_serial_is_issued_once() {
        let (_dir, db) = open_temp();
        issued(&db, b"a", "0a");
        let (rec, _) = db.submit(request("WS01$", b"b"), T0).unwrap();
        let err = db
            .record_issued(rec.id, b"c", "0A", T0 + time::Duration::days(1), false, T0)
            .unwrap_err();
        assert!(
            matches!(err.kind, DbErrorKind::SerialInUse { id: 1, .. }),
            "{err}"
        );
        assert_eq!(
            db.get(rec.id).unwrap().unwrap().disposition,
            Disposition::Pending
        );
    }

    #[test]
    fn revoke_an_issued_certificate() {
        let (_dir, db) = open_temp();
        let rec = issued(&db, b"r", "7f01");
        let when = T0 + time::Duration::days(3);
        let revoked = db.revoke("7F:01", 1, when).unwrap();
        assert_eq!(revoked.id, rec.id);
        assert_eq!(revoked.disposition, Disposition::Revoked);
        assert_eq!(revoked.disposition.code(), 6);
        assert_eq!(revoked.revoked_at, Some(when));
        assert_eq!(revoked.revocation_reason, Some(1));
        assert_eq!(revoked.certificate, rec.certificate);
        assert_eq!(
            db.revoked().unwrap(),
            vec![RevokedEntry {
                serial: "7f01".into(),
                revoked_at: when,
                reason: 1
            }]
        );

        let err = db
            .revoke("7f01", 4, when + time::Duration::days(1))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("already revoked at 2025-03-04T12:00:00Z (reason 1)"),
            "{err}"
        );
        assert_eq!(db.get(rec.id).unwrap().unwrap(), revoked);
    }

    #[test]
    fn what_cannot_be_revoked() {
        let (_dir, db) = open_temp();
        issued(&db, b"ok", "10");
        // A pending request has no serial yet, even when it renews one.
        let renewal = NewRequest {
            renewal_of: Some("77"),
            authentication: None,
            ..request("a", b"p")
        };
        db.submit(renewal, T0).unwrap();
        let cases: &[(&str, u8, &str)] = &[
            ("99", 1, "no certificate with serial 99"),
            ("77", 1, "no certificate with serial 77"),
            ("10", 7, "revocation reason 7 is not a CRLReason"),
            ("10", 11, "revocation reason 11 is not a CRLReason"),
            ("zz", 1, "expected hexadecimal digits"),
            ("", 1, "no hexadecimal digits"),
        ];
        for (serial, reason, message) in cases {
            let err = db.revoke(serial, *reason, T0).unwrap_err();
            assert!(
                err.to_string().contains(message),
                "{serial}/{reason}: {err}"
            );
        }
        for reason in [0, 1, 2, 3, 4, 5, 6, 8, 9, 10] {
            assert!(is_crl_reason(reason));
        }
        assert!(db.revoked().unwrap().is_empty());
    }

    #[test]
    fn revoked_lists_every_revocation_in_order() {
        let (_dir, db) = open_temp();
        for serial in ["01", "02", "03", "04"] {
            issued(&db, serial.as_bytes(), serial);
        }
        db.revoke("03", 0, T0 + time::Duration::days(1)).unwrap();
        db.revoke("01", 4, T0 + time::Duration::days(2)).unwrap();
        let got: Vec<(String, u8)> = db
            .revoked()
            .unwrap()
            .into_iter()
            .map(|e| (e.serial, e.reason))
            .collect();
        assert_eq!(got, vec![("03".into(), 0), ("01".into(), 4)]);
    }

    #[test]
    fn crl_numbers_increase_across_reopen_and_handles() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.db");
        {
            let db = Database::open(&path).unwrap();
            assert_eq!(db.next_crl_number().unwrap(), 1);
            assert_eq!(db.next_crl_number().unwrap(), 2);
        }
        let a = Database::open(&path).unwrap();
        let b = Database::open(&path).unwrap();
        assert_eq!(a.next_crl_number().unwrap(), 3);
        assert_eq!(b.next_crl_number().unwrap(), 4);
        assert_eq!(a.next_crl_number().unwrap(), 5);
    }

    #[test]
    fn crl_numbers_stay_above_a_published_one() {
        let (_dir, db) = open_temp();
        assert_eq!(db.next_crl_number_above(7).unwrap(), 8);
        // A lower floor changes nothing: numbers never go back.
        assert_eq!(db.next_crl_number_above(2).unwrap(), 9);
        assert_eq!(db.next_crl_number().unwrap(), 10);
    }

    #[test]
    fn two_handles_one_writing_one_reading() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.db");
        let writer = Database::open(&path).unwrap();
        let reader = Database::open(&path).unwrap();
        let (rec, _) = writer.submit(request("WS01$", b"x"), T0).unwrap();
        assert_eq!(
            reader.get(rec.id).unwrap().unwrap().disposition,
            Disposition::Pending
        );
        writer
            .record_issued(rec.id, b"c", "05", T0 + time::Duration::days(1), false, T0)
            .unwrap();
        assert!(reader.serial_exists("05").unwrap());
        reader.revoke("05", 5, T0).unwrap();
        assert_eq!(
            writer.get(rec.id).unwrap().unwrap().disposition,
            Disposition::Revoked
        );
    }

    #[test]
    fn concurrent_writers_and_a_reader_in_threads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.db");
        Database::open(&path).unwrap();
        let writers: Vec<_> = (0..3)
            .map(|w| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let db = Database::open(&path).unwrap();
                    for i in 0..40u32 {
                        let bytes = format!("{w}-{i}");
                        let (rec, created) =
                            db.submit(request("WS01$", bytes.as_bytes()), T0).unwrap();
                        assert!(created);
                        db.record_denied(rec.id, 1, "no", T0).unwrap();
                        db.next_crl_number().unwrap();
                    }
                })
            })
            .collect();
        let reader = {
            let path = path.clone();
            std::thread::spawn(move || {
                let db = Database::open(&path).unwrap();
                let mut seen = 0;
                for _ in 0..50 {
                    let n = db.list(ListFilter::All).unwrap().len();
                    assert!(n >= seen, "the list never shrinks");
                    seen = n;
                }
            })
        };
        for w in writers {
            w.join().unwrap();
        }
        reader.join().unwrap();
        let db = Database::open(&path).unwrap();
        assert_eq!(db.list(ListFilter::All).unwrap().len(), 120);
        assert_eq!(db.next_crl_number().unwrap(), 121);
    }

    #[test]
    fn a_file_that_is_not_a_database_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.db");
        std::fs::write(&path, vec![0x5a; 8192]).unwrap();
        let err = Database::open(&path).unwrap_err();
        assert!(
            matches!(err.kind, DbErrorKind::NotADatabase { .. }),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(
            text.contains("not a request database or is corrupt"),
            "{text}"
        );
    }

    #[test]
    fn a_damaged_header_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.db");
        {
            let db = Database::open(&path).unwrap();
            db.submit(request("a", b"r"), T0).unwrap();
        } // closing the last connection checkpoints the WAL into the file
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[..16].copy_from_slice(b"garbage garbage!");
        std::fs::write(&path, bytes).unwrap();
        let err = Database::open(&path).unwrap_err();
        assert!(
            matches!(err.kind, DbErrorKind::NotADatabase { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn a_newer_schema_is_refused_and_an_old_one_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.db");
        Database::open(&path).unwrap();
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let err = Database::open(&path).unwrap_err();
        assert!(matches!(err.kind, DbErrorKind::TooNew { .. }), "{err:?}");
        assert!(err.to_string().contains("newer than this program"), "{err}");

        // An empty SQLite file (version 0) gets the schema.
        let empty = dir.path().join("empty.db");
        Connection::open(&empty)
            .unwrap()
            .execute_batch("CREATE TABLE unrelated (x)")
            .unwrap();
        let db = Database::open(&empty).unwrap();
        assert_eq!(db.next_crl_number().unwrap(), 1);
    }

    #[test]
    fn a_missing_directory_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/ca.db");
        let err = Database::open(&path).unwrap_err();
        assert!(matches!(err.kind, DbErrorKind::Create(_)), "{err:?}");
        assert!(err.to_string().contains("no/such/ca.db"), "{err}");
    }

    #[test]
    fn serial_normalization_table() {
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("1fab", Ok("1fab")),
            ("1FAB", Ok("1fab")),
            ("001fab", Ok("1fab")),
            ("00:1F:AB", Ok("1fab")),
            ("1f ab", Ok("1fab")),
            ("0x1FAB", Ok("1fab")),
            ("abc", Ok("0abc")),
            ("0abc", Ok("0abc")),
            ("5", Ok("05")),
            ("0", Ok("00")),
            ("00:00", Ok("00")),
            ("  7f  ", Ok("7f")),
            ("80", Ok("80")),
            (
                &"ab".repeat(20),
                Ok("abababababababababababababababababababab"),
            ),
            (&"ab".repeat(21), Err("longer than 20 octets")),
            ("", Err("no hexadecimal digits")),
            ("::", Err("no hexadecimal digits")),
            ("0x", Err("no hexadecimal digits")),
            ("1g", Err("expected hexadecimal digits")),
            ("-1", Err("expected hexadecimal digits")),
        ];
        for (input, want) in cases {
            let got = normalize_serial(input);
            match (want, &got) {
                (Ok(w), Ok(g)) => assert_eq!(g, w, "{input:?}"),
                (Err(w), Err(e)) => assert!(e.to_string().contains(w), "{input:?}: {e}"),
                _ => panic!("{input:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    proptest! {
        /// Whatever way a serial is written, it normalizes to what the
        /// certificate parser reports for the same bytes.
        #[test]
        fn normalization_agrees_with_the_certificate_parser(
            bytes in proptest::collection::vec(any::<u8>(), 1..=20),
            zeros in 0usize..4,
            upper in any::<bool>(),
            colons in any::<bool>(),
        ) {
            let want = serial_hex(&bytes);
            let mut written: Vec<String> = std::iter::repeat_n("00".to_string(), zeros)
                .chain(bytes.iter().map(|b| format!("{b:02x}")))
                .collect();
            if upper {
                written = written.into_iter().map(|s| s.to_uppercase()).collect();
            }
            let text = written.join(if colons { ":" } else { "" });
            prop_assert_eq!(normalize_serial(&text).unwrap(), want.clone());
            prop_assert_eq!(normalize_serial(&want).unwrap(), want);
        }
    }
}
