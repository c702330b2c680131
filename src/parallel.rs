//! Running one job over many items on a few threads: the smoke checks
//! (processes to supervise) and the fsyncs of a batch (concurrent fsyncs
//! share journal commits) both wait on the kernel, not the CPU.

use std::sync::atomic::{AtomicUsize, Ordering};

/// `f` over `items` on up to `workers` threads (this one included; 0 counts
/// as 1) pulling from a shared index; results in item order. A worker that
/// cannot be spawned leaves its share to the others; a panic in `f` is
/// resumed here once every worker stopped.
pub fn parallel_map<T: Sync, R: Send>(items: &[T], workers: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { return done };
            done.push((i, f(item)));
        }
    };
    let extra = workers.clamp(1, items.len().max(1)) - 1;
    let mut all: Vec<(usize, R)> = std::thread::scope(|s| {
        let spawned: Vec<_> =
            (0..extra).filter_map(|_| std::thread::Builder::new().spawn_scoped(s, work).ok()).collect();
        let mut all = work();
        for handle in spawned {
            match handle.join() {
                Ok(done) => all.extend(done),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        all
    });
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_map_keeps_order_for_any_worker_count() {
        let items: Vec<u32> = (0..37).collect();
        for workers in [0, 1, 2, 4, 64] {
            let out = parallel_map(&items, workers, |x| x * 2);
            assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>(), "{workers} workers");
        }
        assert!(parallel_map(&[] as &[u8], 4, |x| *x).is_empty());
        let units = [(), (), ()];
        assert_eq!(parallel_map(&units, 2, |_| 1).len(), 3);
    }
}
