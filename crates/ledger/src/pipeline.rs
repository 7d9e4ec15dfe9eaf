//! Checking a log's entries on every core while they are read and replayed in order.
//!
//! The caller's thread reads entry lines into batches; it and a worker thread for each other
//! core check the signatures of whole batches (one Ed25519 batch verification each, straight
//! from the lines' bytes). The caller's thread then decodes each checked batch (canonical
//! parse, leaf hash) and replays it in log order. Signature checking, by far the largest part,
//! runs on every core; decoding and replaying stay on the one thread that needs the decoded
//! events, so no decoded event is handed from one core to another. Reading, checking and
//! replaying overlap, no thread waits for a whole phase to end, and only a few batches are held
//! at once, so the verifier's memory does not grow with the log.

use std::collections::{BTreeMap, VecDeque};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::entry::{first_bad_signature_of_lines, Entry, EntryError, KeyCache, SignatureFault};

/// Consecutive entry lines, read by the caller's thread and checked by any thread.
struct Batch {
    /// Log index of the first line.
    first: u64,
    /// The lines, back to back.
    bytes: Vec<u8>,
    /// Where each line ends in `bytes`.
    ends: Vec<usize>,
}

impl Batch {
    fn lines(&self) -> impl Iterator<Item = &[u8]> {
        self.ends.iter().scan(0, |start, &end| {
            let line = &self.bytes[*start..end];
            *start = end;
            Some(line)
        })
    }
}

/// A batch whose signatures were checked, and the first line whose signature fails, if one
/// does.
struct Verdict {
    batch: Batch,
    /// Position in the batch of the first line whose signature fails, and why.
    fault: Option<(usize, SignatureFault)>,
}

/// How [`check_entries`] stopped early.
pub(crate) enum Stop<E> {
    /// Entry `index` is not a canonical entry or its signature fails.
    Entry { index: u64, error: EntryError },
    /// Reading a line or applying an entry failed.
    Other(E),
}

/// Reads `count` entry lines with `read` (which appends the line for log index `i` to a buffer,
/// without its newline), has their signatures checked on every core, `batch` lines at a time,
/// and decodes each entry and hands it with its index to `apply`, in log order, on the calling
/// thread. Stops at the first failure in log order: a line that is not a canonical entry, a
/// signature that fails, a line that could not be read, or an error from `apply`; entries after
/// it are never applied. A line that is both not canonical and badly signed is reported as not
/// canonical.
///
/// The calling thread checks signatures too whenever it has nothing to decode and apply, so
/// exactly one thread per core works (more would only take turns on the cores and spoil their
/// caches).
pub(crate) fn check_entries<E>(
    count: u64,
    batch: usize,
    mut read: impl FnMut(&mut Vec<u8>, u64) -> Result<(), E>,
    mut apply: impl FnMut(u64, &Entry<&[u8]>) -> Result<(), E>,
) -> Result<(), Stop<E>> {
    let batch = batch.max(1);
    // One batch or none is checked on this thread alone: a worker would only cost its start.
    let cores = if count > batch as u64 {
        rayon::current_num_threads().max(1)
    } else {
        1
    };
    // Batches read but not yet applied: enough to keep every core busy while the oldest is
    // still being checked.
    let in_flight_max = 2 * cores + 2;
    let queue = Queue::default();
    let (done_tx, done_rx) = mpsc::channel::<Verdict>();
    std::thread::scope(|s| {
        let handles: Vec<_> = (1..cores)
            .map(|_| {
                let (queue, done_tx) = (&queue, done_tx.clone());
                s.spawn(move || worker(queue, &done_tx))
            })
            .collect();
        drop(done_tx);
        // Workers end only once the queue closes: one that ended before means it panicked, and
        // waiting for its verdict would wait forever. The coordinator stops by panicking too;
        // the scope then joins the workers and raises the panic in the caller.
        let receive = || loop {
            match done_rx.recv_timeout(Duration::from_millis(50)) {
                Ok(verdict) => return verdict,
                Err(RecvTimeoutError::Timeout) if !handles.iter().any(|h| h.is_finished()) => {}
                Err(_) => panic!("a thread checking entries stopped early (it panicked)"),
            }
        };
        // Closes the queue however the coordinator ends (even by a panic), so that the
        // workers end and the scope can join them.
        let _close = CloseOnDrop(&queue);
        let mut keys = KeyCache::default();
        let mut check_one = || queue.try_pop().map(|b| check(b, &mut keys));
        let mut ready = || match done_rx.try_recv() {
            Ok(verdict) => verdict,
            Err(_) => check_one().unwrap_or_else(receive),
        };
        coordinate(
            count,
            batch,
            in_flight_max,
            &queue,
            &mut ready,
            &mut read,
            &mut apply,
        )
    })
}

/// The batches waiting for a thread to check them.
#[derive(Default)]
struct Queue {
    /// The batches, and whether the queue is closed (no more will come).
    state: Mutex<(VecDeque<Batch>, bool)>,
    /// Signalled when a batch is added or the queue closes.
    changed: Condvar,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, (VecDeque<Batch>, bool)> {
        // A panic while holding this lock leaves nothing half-done: the deque is whole.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, batch: Batch) {
        self.lock().0.push_back(batch);
        self.changed.notify_one();
    }

    /// The oldest batch, if one is waiting.
    fn try_pop(&self) -> Option<Batch> {
        self.lock().0.pop_front()
    }

    /// The oldest batch, waiting for one; `None` once the queue is closed.
    fn pop(&self) -> Option<Batch> {
        let mut state = self.lock();
        loop {
            if state.1 {
                return None;
            }
            if let Some(batch) = state.0.pop_front() {
                return Some(batch);
            }
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn close(&self) {
        self.lock().1 = true;
        self.changed.notify_all();
    }
}

struct CloseOnDrop<'a>(&'a Queue);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Checks the signatures of a batch.
fn check(batch: Batch, keys: &mut KeyCache) -> Verdict {
    let fault = first_bad_signature_of_lines(batch.lines(), keys);
    Verdict { batch, fault }
}

/// A worker: checks batches until the queue closes.
fn worker(queue: &Queue, done: &Sender<Verdict>) {
    let mut keys = KeyCache::default();
    while let Some(batch) = queue.pop() {
        if done.send(check(batch, &mut keys)).is_err() {
            return;
        }
    }
}

/// The reader and replayer: keeps up to `in_flight_max` batches read and not yet applied, and
/// decodes and applies the batches in log order as `next_verdict` gives them checked.
fn coordinate<E>(
    count: u64,
    batch: usize,
    in_flight_max: usize,
    queue: &Queue,
    next_verdict: &mut impl FnMut() -> Verdict,
    read: &mut impl FnMut(&mut Vec<u8>, u64) -> Result<(), E>,
    apply: &mut impl FnMut(u64, &Entry<&[u8]>) -> Result<(), E>,
) -> Result<(), Stop<E>> {
    let mut spare: Vec<Batch> = Vec::new();
    let mut ready: BTreeMap<u64, Verdict> = BTreeMap::new();
    let (mut read_to, mut applied_to, mut in_flight) = (0u64, 0u64, 0usize);
    // A line that could not be read is reported once every entry before it is applied (one of
    // them may fail first).
    let mut read_failure = None;
    while applied_to < read_to || (read_failure.is_none() && read_to < count) {
        while read_failure.is_none() && read_to < count && in_flight < in_flight_max {
            let mut next = spare.pop().unwrap_or(Batch {
                first: 0,
                bytes: Vec::new(),
                ends: Vec::with_capacity(batch),
            });
            next.first = read_to;
            next.bytes.clear();
            next.ends.clear();
            while (next.ends.len() as u64) < (count - read_to).min(batch as u64) {
                match read(&mut next.bytes, read_to + next.ends.len() as u64) {
                    Ok(()) => next.ends.push(next.bytes.len()),
                    Err(e) => {
                        read_failure = Some(e);
                        break;
                    }
                }
            }
            if next.ends.is_empty() {
                break;
            }
            read_to += next.ends.len() as u64;
            in_flight += 1;
            queue.push(next);
        }
        if applied_to == read_to {
            break;
        }
        let verdict = next_verdict();
        in_flight -= 1;
        ready.insert(verdict.batch.first, verdict);
        while let Some(Verdict { batch, fault }) = ready.remove(&applied_to) {
            for (i, line) in batch.lines().enumerate() {
                let index = batch.first + i as u64;
                let entry =
                    Entry::decode_borrowed(line).map_err(|error| Stop::Entry { index, error })?;
                if let Some((_, fault)) = fault.filter(|(at, _)| *at == i) {
                    return Err(Stop::Entry {
                        index,
                        error: entry.signature_error(fault),
                    });
                }
                apply(index, &entry).map_err(Stop::Other)?;
            }
            applied_to += batch.ends.len() as u64;
            spare.push(batch);
        }
    }
    match read_failure {
        Some(e) => Err(Stop::Other(e)),
        None => Ok(()),
    }
}
