//! The access log: one line per request on stderr, written by a thread of its own so that
//! a request never waits on the terminal, a pipe or the stderr lock.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TryRecvError, TrySendError};
use std::thread::JoinHandle;
use std::time::Duration;

/// Lines waiting to be written; beyond this, lines are dropped and counted, never waited
/// for.
const QUEUE: usize = 16 * 1024;
/// How often the writer looks for lines.
const POLL: Duration = Duration::from_millis(20);

pub(crate) struct AccessLog {
    tx: Option<SyncSender<String>>,
    thread: Option<JoinHandle<()>>,
    dropped: AtomicU64,
}

impl AccessLog {
    /// Starts the writer, or a log that writes nothing when `enabled` is false.
    pub(crate) fn start(enabled: bool) -> Self {
        if !enabled {
            return Self {
                tx: None,
                thread: None,
                dropped: AtomicU64::new(0),
            };
        }
        let (tx, rx) = sync_channel::<String>(QUEUE);
        let thread = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stderr());
                // Polled, not woken per line: a wake-up per request costs the server more
                // than the write. Lines show within POLL.
                loop {
                    loop {
                        match rx.try_recv() {
                            Ok(line) => {
                                let _ = writeln!(out, "{line}");
                            }
                            Err(TryRecvError::Empty) => break,
                            Err(TryRecvError::Disconnected) => {
                                let _ = out.flush();
                                return;
                            }
                        }
                    }
                    let _ = out.flush();
                    std::thread::sleep(POLL);
                }
            })
            .ok();
        Self {
            tx: Some(tx),
            thread,
            dropped: AtomicU64::new(0),
        }
    }

    /// Whether lines are written at all (so callers can skip formatting them).
    pub(crate) fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Queues a line; drops it (and counts it) if the writer is that far behind.
    pub(crate) fn line(&self, line: String) {
        if let Some(tx) = &self.tx {
            if let Err(TrySendError::Full(_)) = tx.try_send(line) {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Lines dropped because the writer could not keep up.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        // Closing the channel ends the writer after it has written what is queued.
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
