//! The Status answer, kept while nothing it is made of changed: the service computes it again
//! only when the tree or a database moved on. The tree is compared by its
//! [`Fingerprint`] (listings and file metadata, no file read, no hash); each database
//! through its backend's [`Watch`] (SQLite: the file's identity and metadata and
//! `PRAGMA data_version` through a read-only connection kept open; PostgreSQL: never kept). A
//! fingerprint that is not settled (a file written moments before, when a later write in the
//! same clock tick would not show) or a database whose watch cannot tell is never trusted: the
//! answer is computed afresh and not kept. Calls that arrive while a check is running wait for the next
//! check, which starts after they arrived, and share its answer: with many clients the tree is
//! looked at once per round of calls, not once per call.

use std::sync::{Arc, Mutex, MutexGuard};

use strata_engine::Project;
use strata_engine::core::backend::{ChangeToken, Watch};
use strata_engine::core::tree::Fingerprint;

use crate::proto;

/// The last Status answer and what it was computed from.
pub(crate) struct StatusCache {
    project: Project,
    flight: Mutex<Flight>,
    /// Signalled when a check ends.
    landed: tokio::sync::Notify,
    state: Mutex<State>,
}

type Answer = Result<proto::StatusResponse, tonic::Status>;

/// The checks of the tree and databases: one at a time, numbered as they start.
#[derive(Default)]
struct Flight {
    started: u64,
    finished: u64,
    running: bool,
    /// The answer of check `finished`.
    answer: Option<Answer>,
}

struct State {
    /// The test database, then the real one (the order Status lists them in).
    watched: Vec<Box<dyn Watch>>,
    last: Option<(Key, proto::StatusResponse)>,
    /// How many times the answer was computed.
    computed: u64,
}

#[derive(PartialEq, Eq)]
struct Key {
    tree: Fingerprint,
    dbs: Vec<ChangeToken>,
}

impl StatusCache {
    pub(crate) fn new(project: Project) -> StatusCache {
        let watched = [&project.test_db, &project.db]
            .into_iter()
            .map(|db| strata_engine::backends::watch(&project, db))
            .collect();
        StatusCache {
            project,
            flight: Mutex::default(),
            landed: tokio::sync::Notify::new(),
            state: Mutex::new(State {
                watched,
                last: None,
                computed: 0,
            }),
        }
    }

    /// The Status answer: that of a check that started after this call arrived, which reuses
    /// the kept answer if nothing changed since it was computed and else runs `compute`. The
    /// check runs on a blocking thread; callers waiting for it hold no thread.
    pub(crate) async fn get(self: &Arc<Self>, compute: fn(&Project) -> Answer) -> Answer {
        let need = lock(&self.flight).started + 1;
        loop {
            // Registered before looking, so a check that ends in between still wakes us.
            let landed = self.landed.notified();
            tokio::pin!(landed);
            landed.as_mut().enable();
            let landing = {
                let mut flight = lock(&self.flight);
                if flight.finished >= need
                    && let Some(answer) = &flight.answer
                {
                    return answer.clone();
                }
                (!flight.running).then(|| {
                    flight.running = true;
                    flight.started += 1;
                    Landing {
                        cache: Arc::clone(self),
                        check: flight.started,
                        answer: None,
                    }
                })
            };
            let Some(mut landing) = landing else {
                landed.await;
                continue;
            };
            return tokio::task::spawn_blocking(move || {
                let answer = landing.cache.check(compute);
                landing.answer.replace(answer.clone());
                answer
            })
            .await
            .unwrap_or_else(|e| Err(tonic::Status::internal(format!("the call panicked: {e}"))));
        }
    }

    /// Compares what the answer is made of with what the kept one was made of.
    fn check(&self, compute: fn(&Project) -> Answer) -> Answer {
        let project = &self.project;
        let mut state = lock(&self.state);
        // Taken before computing: a change while computing makes the next key differ.
        let key = state.key(project);
        if let (Some(key), Some((last, answer))) = (&key, &state.last)
            && key == last
        {
            return Ok(answer.clone());
        }
        state.last = None;
        let answer = compute(project)?;
        state.computed += 1;
        state.last = key.map(|k| (k, answer.clone()));
        Ok(answer)
    }

    /// How many times the answer was computed rather than reused.
    #[cfg(test)]
    pub(crate) fn computed(&self) -> u64 {
        lock(&self.state).computed
    }
}

/// Ends a check, also when it panicked: the next caller starts another.
struct Landing {
    cache: Arc<StatusCache>,
    check: u64,
    answer: Option<Answer>,
}

impl Drop for Landing {
    fn drop(&mut self) {
        let mut flight = lock(&self.cache.flight);
        flight.running = false;
        flight.finished = self.check;
        flight.answer = self.answer.take();
        drop(flight);
        self.cache.landed.notify_waiters();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl State {
    /// What the answer depends on, or `None` when that cannot be told cheaply and surely.
    fn key(&mut self, project: &Project) -> Option<Key> {
        let tree = Fingerprint::of(&project.migrations_dir()).ok()?;
        if !tree.is_settled() {
            return None;
        }
        let dbs = self
            .watched
            .iter_mut()
            .map(|w| w.token())
            .collect::<Option<Vec<_>>>()?;
        Some(Key { tree, dbs })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use strata_engine::commands::migrate::{self, MigrateOptions};

    use super::*;
    use crate::service::status;

    fn project(dir: &Path) -> Project {
        let m = dir.join("migrations/app/20240101T000000Z-zero");
        std::fs::create_dir_all(&m).unwrap();
        std::fs::write(m.join("do.sql"), "CREATE TABLE t(a);\n").unwrap();
        let p = Project::open(dir.to_path_buf()).unwrap();
        migrate::migrate(&p, &MigrateOptions::default(), &mut |_| {}).unwrap();
        p
    }

    /// Waits until what was just written is old enough to be trusted (see
    /// `Fingerprint::is_settled`), so that the next answer is kept.
    fn settle() {
        std::thread::sleep(Duration::from_millis(250));
    }

    #[tokio::test]
    async fn the_answer_is_kept_until_the_tree_or_a_database_changes() {
        let dir = tempfile::tempdir().unwrap();
        let p = project(dir.path());
        let cache = Arc::new(StatusCache::new(p.clone()));
        settle();
        let first = cache.get(status).await.unwrap();
        assert!(first.report_json.contains("\"applied\""), "{first:?}");
        assert_eq!(cache.get(status).await.unwrap(), first);
        assert_eq!(cache.computed(), 1, "nothing changed: the answer is kept");

        // The applied do.sql edited in place to the same size.
        let do_sql = dir
            .path()
            .join("migrations/app/20240101T000000Z-zero/do.sql");
        std::fs::write(&do_sql, "CREATE TABLE u(a);\n").unwrap();
        let edited = cache.get(status).await.unwrap();
        assert!(edited.report_json.contains("\"modified\""), "{edited:?}");
        assert_eq!(cache.computed(), 2);
        settle();
        assert_eq!(cache.get(status).await.unwrap(), edited);
        let kept = cache.computed();
        assert_eq!(cache.get(status).await.unwrap(), edited);
        assert_eq!(cache.computed(), kept);

        // Another connection commits to the real database.
        let conn = rusqlite::Connection::open(p.db.file().unwrap()).unwrap();
        conn.execute_batch("CREATE TABLE added_by_hand(a);")
            .unwrap();
        let changed = cache.get(status).await.unwrap();
        assert!(changed.report_json.contains("added_by_hand"), "{changed:?}");
        assert_eq!(cache.computed(), kept + 1);
        drop(conn);

        // The database removed.
        std::fs::remove_file(p.db.file().unwrap()).unwrap();
        let gone = cache.get(status).await.unwrap();
        assert!(gone.ledgers[1].applied.is_empty(), "{gone:?}");
        assert_eq!(cache.computed(), kept + 2);
    }

    #[tokio::test]
    async fn a_database_with_a_journal_left_behind_is_read_afresh_every_time() {
        let dir = tempfile::tempdir().unwrap();
        let p = project(dir.path());
        let cache = Arc::new(StatusCache::new(p.clone()));
        settle();
        cache.get(status).await.unwrap();
        let mut journal = p.test_db.file().unwrap().as_os_str().to_os_string();
        journal.push("-journal");
        std::fs::write(journal, b"not empty").unwrap();
        let before = cache.computed();
        cache.get(status).await.unwrap();
        cache.get(status).await.unwrap();
        assert_eq!(cache.computed(), before + 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_one_answer() {
        let dir = tempfile::tempdir().unwrap();
        let p = project(dir.path());
        let cache = Arc::new(StatusCache::new(p.clone()));
        settle();
        let calls: Vec<_> = (0..8)
            .map(|_| {
                let cache = Arc::clone(&cache);
                tokio::spawn(async move {
                    let mut answers = Vec::new();
                    for _ in 0..50 {
                        answers.push(cache.get(status).await.unwrap());
                    }
                    answers
                })
            })
            .collect();
        let mut answers = Vec::new();
        for c in calls {
            answers.extend(c.await.unwrap());
        }
        assert_eq!(answers.len(), 400);
        assert!(answers.iter().all(|a| *a == answers[0]));
        assert_eq!(cache.computed(), 1);
    }
}
