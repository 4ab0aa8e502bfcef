//! Idle directory connections of the CA. A request takes one (or opens a
//! new one) and gives it back when done, so concurrent requests each work on
//! their own connection instead of queueing behind one lock; at most
//! `max_idle` are kept between requests.

use std::sync::Mutex;

use crate::directory::Directory;

pub struct Pool {
    idle: Mutex<Vec<Directory>>,
    max_idle: usize,
}

impl Pool {
    pub fn new(max_idle: usize) -> Pool {
        Pool {
            idle: Mutex::new(Vec::new()),
            max_idle,
        }
    }

    /// An idle connection, most recently used first (the likeliest to be
    /// still open).
    pub fn take(&self) -> Option<Directory> {
        self.idle.lock().ok()?.pop()
    }

    /// Keeps a connection that worked for the next request.
    pub fn give(&self, dir: Directory) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < self.max_idle
        {
            idle.push(dir);
        }
    }
}
