//! Group commit for the request database: the writes of concurrent requests
//! share one durable (`synchronous=FULL`) commit instead of taking one each
//! in turn under one lock.
//!
//! One thread owns a connection of its own. It takes every write queued
//! while the previous group was committing, runs each in a savepoint of one
//! `BEGIN IMMEDIATE` transaction (a write that fails is rolled back alone),
//! commits once, and only then answers each writer: an answer, and so an
//! acknowledgement to a client, never precedes the commit that makes it
//! durable. If the group's commit fails, every write of the group gets the
//! error and none is acknowledged.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use tokio::sync::oneshot;

use super::db::{Database, DbError, DbErrorKind};

/// Called once the group's commit is done, with its error if it failed.
pub(crate) type Ack = Box<dyn FnOnce(Option<&DbError>) + Send>;
/// One write: runs inside the group's transaction and returns what answers
/// the writer after the commit.
pub(crate) type Job = Box<dyn FnOnce(&Database) -> Ack + Send>;

/// Writes queued together at most: bounds the time the first of them waits
/// for the others' statements.
const MAX_GROUP: usize = 64;

/// The queue of writes and the thread that commits them.
pub struct GroupCommit {
    queue: mpsc::Sender<Job>,
    path: PathBuf,
}

impl GroupCommit {
    /// Opens a connection of its own to the database at `path` and starts the
    /// committing thread, which ends when the `GroupCommit` is dropped.
    pub fn open(path: &Path) -> Result<GroupCommit, DbError> {
        let db = Database::open(path)?;
        let (queue, jobs) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("ca-commit".into())
            .spawn(move || {
                while let Ok(first) = jobs.recv() {
                    let mut group = vec![first];
                    group.extend(jobs.try_iter().take(MAX_GROUP - 1));
                    run_group(&db, group);
                }
            })
            .map_err(|e| DbError {
                path: path.to_path_buf(),
                kind: DbErrorKind::Committer(format!("cannot start its thread: {e}")),
            })?;
        Ok(GroupCommit {
            queue,
            path: path.to_path_buf(),
        })
    }

    /// Runs `f` in the next group and answers once that group is durable.
    /// `f` should only run statements: the group waits for it.
    pub async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, DbError> {
        let (done, answer) = oneshot::channel();
        let path = self.path.clone();
        let job: Job = Box::new(move |db| {
            let out = f(db);
            Box::new(move |commit: Option<&DbError>| {
                let out = match (out, commit) {
                    (Ok(_), Some(e)) => Err(DbError {
                        path,
                        kind: DbErrorKind::Committer(format!("the group's commit failed: {e}")),
                    }),
                    (out, _) => out,
                };
                let _ = done.send(out);
            })
        });
        let gone = || DbError {
            path: self.path.clone(),
            kind: DbErrorKind::Committer("its thread has stopped".into()),
        };
        self.queue.send(job).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// Runs one group: every job in one transaction, one commit, then the acks.
/// If the transaction cannot begin, each job runs in its own transaction
/// (and so commits before its ack, as every write of [`Database`] does).
pub(crate) fn run_group(db: &Database, jobs: Vec<Job>) {
    if db.begin_group().is_err() {
        for job in jobs {
            let ack = job(db);
            ack(None);
        }
        return;
    }
    let acks: Vec<Ack> = jobs.into_iter().map(|job| job(db)).collect();
    let committed = db.commit_group();
    for ack in acks {
        ack(committed.as_ref().err());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::db::NewRequest;
    use std::sync::{Arc, Mutex};
    use time::OffsetDateTime;

    fn request<'a>(requester: &'a str, bytes: &'a [u8]) -> NewRequest<'a> {
        NewRequest {
            requester,
            requester_sid: None,
            template: Some("Machine"),
            request: bytes,
            renewal_of: None,
            authentication: None,
        }
    }

    /// What a fresh connection (another process, after a crash) sees of
    /// request `id`: only what was committed.
    fn committed_requester(path: &Path, id: u64) -> Option<String> {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.query_row(
            "SELECT requester FROM requests WHERE id = ?1",
            [id as i64],
            |row| row.get(0),
        )
        .ok()
    }

    /// A job submitting `bytes` whose ack checks, before the writer is
    /// answered, that a fresh connection already reads the record: an ack
    /// that preceded the commit would find nothing.
    fn checked_job(path: &Path, bytes: Vec<u8>, seen: Arc<Mutex<Vec<bool>>>) -> Job {
        let path = path.to_path_buf();
        Box::new(move |db: &Database| {
            let out = db.submit(request("HOST1$", &bytes), OffsetDateTime::now_utc());
            Box::new(move |commit: Option<&DbError>| {
                assert!(commit.is_none(), "{commit:?}");
                let (record, created) = out.unwrap();
                assert!(created);
                let found = committed_requester(&path, record.id);
                seen.lock()
                    .unwrap()
                    .push(found.as_deref() == Some("HOST1$"));
            }) as Ack
        })
    }

    #[test]
    fn every_ack_of_a_group_follows_its_durable_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.db");
        let db = Database::open(&path).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let jobs = (0..5u8)
            .map(|i| checked_job(&path, vec![i; 40], seen.clone()))
            .collect();
        run_group(&db, jobs);
        assert_eq!(*seen.lock().unwrap(), vec![true; 5]);
    }

    #[test]
    fn a_failed_write_is_rolled_back_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.db");
        let db = Database::open(&path).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(Mutex::new(None));
        let r = refused.clone();
        let failing: Job = Box::new(move |db: &Database| {
            // Records a request, then fails the same write: its insert must
            // not reach the file.
            let out = db.write("a write that fails", |tx| {
                tx.execute(
                    "INSERT INTO requests (fingerprint, requester, request, disposition, \
                     submitted_at) VALUES ('doomed', 'HOST2$', x'00', 'pending', 0)",
                    [],
                )
                .unwrap();
                Err::<(), _>(DbError {
                    path: PathBuf::new(),
                    kind: DbErrorKind::UnknownRequest { id: 7 },
                })
            });
            Box::new(move |_: Option<&DbError>| {
                *r.lock().unwrap() = Some(out.is_err());
            }) as Ack
        });
        let jobs = vec![
            checked_job(&path, vec![1; 40], seen.clone()),
            failing,
            checked_job(&path, vec![2; 40], seen.clone()),
        ];
        run_group(&db, jobs);
        assert_eq!(*seen.lock().unwrap(), vec![true, true]);
        assert_eq!(*refused.lock().unwrap(), Some(true));
        let conn = rusqlite::Connection::open(&path).unwrap();
        let doomed: i64 = conn
            .query_row(
                "SELECT count(*) FROM requests WHERE fingerprint = 'doomed'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(doomed, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writers_are_answered_after_their_record_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.db");
        let commits = Arc::new(GroupCommit::open(&path).unwrap());
        let mut tasks = Vec::new();
        for i in 0..64u8 {
            let commits = commits.clone();
            let path = path.clone();
            tasks.push(tokio::spawn(async move {
                let (record, _) = commits
                    .write(move |db| {
                        db.submit(request("HOST3$", &[i; 40]), OffsetDateTime::now_utc())
                    })
                    .await
                    .unwrap();
                committed_requester(&path, record.id)
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().as_deref(), Some("HOST3$"));
        }
        let conn = rusqlite::Connection::open(&path).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM requests", [], |row| row.get(0))
            .unwrap();
        assert_eq!(n, 64);
    }
}
