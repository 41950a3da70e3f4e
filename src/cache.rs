//! The one in-memory cache type of the application: entries expire a fixed time after they were
//! stored, the number of entries is bounded, and invalidations are exact. Used for validated
//! keys and workflow-key policies (`auth`), Easy Auth principals (`http::context`), stored forms
//! and form launches (`forms`).
//!
//! Built on `moka`'s synchronous cache (concurrent reads without a global lock, LRU eviction at
//! the bound, housekeeping on the calling threads: no background thread). Two counters make
//! invalidation exact where `moka` is approximate:
//! - [`Cache::clear`] moves to a new *epoch*; entries stored under an older epoch are never
//!   returned again, whatever `moka`'s clock resolution (its own `invalidate_all` only frees
//!   the memory);
//! - every invalidation moves the *generation*, so a reader that loaded a value before an
//!   invalidation can skip storing it ([`Cache::put_if_current`]): no stale resurrection.
//!
//! Must not depend on any other module of this crate.

use std::borrow::Borrow;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use moka::policy::EvictionPolicy;

/// `moka` refuses longer lifetimes; anything near this is "until the process ends" anyway.
const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A bounded map whose entries expire `ttl` after they were stored. Cheap to share behind an
/// `Arc` or a `static`; every method takes `&self`.
pub struct Cache<K, V> {
    /// `None` when caching is off (a zero TTL or bound): nothing is ever stored.
    inner: Option<moka::sync::Cache<K, (u64, V)>>,
    ttl: Duration,
    /// Moved by [`Cache::clear`]; an entry is valid only under the epoch it was stored in.
    epoch: AtomicU64,
    /// Moved by every invalidation (see [`Cache::put_if_current`]).
    generation: AtomicU64,
}

impl<K, V> Cache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A cache of at most `max_entries` entries (least recently used go first), each valid for
    /// `ttl` after it was stored. A zero `ttl` or `max_entries` turns caching off.
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        let inner = (!ttl.is_zero() && max_entries > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(u64::try_from(max_entries).unwrap_or(u64::MAX))
                .time_to_live(ttl.min(MAX_TTL))
                .eviction_policy(EvictionPolicy::lru())
                .build()
        });
        Self {
            inner,
            ttl,
            epoch: AtomicU64::new(0),
            generation: AtomicU64::new(0),
        }
    }

    /// How long an entry stays valid.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The value stored for `key`, unless it expired or was invalidated since.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (epoch, value) = self.inner.as_ref()?.get(key)?;
        (epoch == self.epoch.load(Ordering::Acquire)).then_some(value)
    }

    /// Stores `value` for `key`, replacing what was there.
    pub fn put(&self, key: K, value: V) {
        if let Some(inner) = &self.inner {
            inner.insert(key, (self.epoch.load(Ordering::Acquire), value));
        }
    }

    /// The current generation: read it before loading a value, and hand it to
    /// [`Cache::put_if_current`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Stores `value` unless something was invalidated since `generation` was read (the value
    /// may have been loaded before that invalidation).
    pub fn put_if_current(&self, key: K, value: V, generation: u64)
    where
        K: Clone,
    {
        let Some(inner) = &self.inner else {
            return;
        };
        if self.generation() != generation {
            return;
        }
        inner.insert(key.clone(), (self.epoch.load(Ordering::Acquire), value));
        // An invalidation that raced with the insert either came after it (and removed it) or
        // moved the generation before this check.
        if self.generation() != generation {
            inner.invalidate(&key);
        }
    }

    /// Drops the entry of `key`.
    pub fn invalidate<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(inner) = &self.inner {
            inner.invalidate(key);
        }
    }

    /// Drops every entry at once.
    pub fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(inner) = &self.inner {
            inner.invalidate_all();
        }
    }
}

impl<K, V> fmt::Debug for Cache<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("ttl", &self.ttl)
            .field(
                "entries",
                &self
                    .inner
                    .as_ref()
                    .map_or(0, moka::sync::Cache::entry_count),
            )
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn entries_expire_after_their_ttl() {
        let cache: Cache<String, u32> = Cache::new(Duration::from_millis(50), 10);
        cache.put("a".into(), 1);
        assert_eq!(cache.get("a"), Some(1));
        assert_eq!(cache.get(&"a".to_owned()), Some(1));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get("a"), None);
    }

    /// Moved from `forms/store.rs` with the type (`TtlCache` is this type now).
    #[test]
    fn cache_expires_and_invalidations_win_over_slow_loads() {
        let cache: Cache<String, u32> = Cache::new(Duration::from_millis(50), 10);
        cache.put("a".into(), 1);
        assert_eq!(cache.get("a"), Some(1));
        let generation = cache.generation();
        cache.invalidate("a");
        cache.put_if_current("a".into(), 2, generation);
        assert_eq!(cache.get("a"), None);
        cache.put("b".into(), 3);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get("b"), None);
    }

    #[test]
    fn invalidations_win_over_slow_loads() {
        let cache: Cache<String, u32> = Cache::new(Duration::from_secs(60), 10);
        cache.put("a".into(), 1);
        let generation = cache.generation();
        cache.invalidate("a");
        assert_eq!(cache.get("a"), None);
        cache.put_if_current("a".into(), 2, generation);
        assert_eq!(cache.get("a"), None);
        let generation = cache.generation();
        cache.put_if_current("a".into(), 3, generation);
        assert_eq!(cache.get("a"), Some(3));
    }

    #[test]
    fn clear_drops_everything_at_once() {
        let cache: Cache<String, u32> = Cache::new(Duration::from_secs(60), 100);
        for i in 0..50 {
            cache.put(format!("k{i}"), i);
        }
        let generation = cache.generation();
        cache.clear();
        for i in 0..50 {
            assert_eq!(cache.get(format!("k{i}").as_str()), None);
        }
        cache.put_if_current("late".into(), 1, generation);
        assert_eq!(cache.get("late"), None);
        cache.put("new".into(), 2);
        assert_eq!(cache.get("new"), Some(2));
    }

    #[test]
    fn zero_ttl_or_bound_caches_nothing() {
        for cache in [
            Cache::<String, u32>::new(Duration::ZERO, 10),
            Cache::<String, u32>::new(Duration::from_secs(60), 0),
        ] {
            cache.put("a".into(), 1);
            assert_eq!(cache.get("a"), None);
        }
        // Lifetimes beyond what moka takes are accepted.
        let forever: Cache<String, u32> = Cache::new(Duration::MAX, 1);
        forever.put("a".into(), 1);
        assert_eq!(forever.get("a"), Some(1));
    }

    #[test]
    fn the_bound_holds() {
        let cache: Cache<u32, u32> = Cache::new(Duration::from_secs(60), 10);
        for i in 0..1_000 {
            cache.put(i, i);
        }
        let inner = cache.inner.as_ref().unwrap();
        inner.run_pending_tasks();
        assert!(inner.entry_count() <= 10, "{}", inner.entry_count());
        // The newest entries are kept.
        assert_eq!(cache.get(&999), Some(999));
    }

    #[test]
    fn shared_across_threads() {
        let cache = Arc::new(Cache::<u32, u32>::new(Duration::from_secs(60), 1_000));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let cache = cache.clone();
                std::thread::spawn(move || {
                    for i in 0..100 {
                        cache.put(t * 100 + i, i);
                        assert_eq!(cache.get(&(t * 100 + i)), Some(i));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
}
