//! Store benches over one million keys (16-byte keys, 32-byte values, as
//! `redis-benchmark -r 1000000 -d 32`), built once.
//!
//! Group `store_1m`:
//! - `get_hit`, `get_miss`: [`Store::get`] of a key chosen at random
//!   (a seeded xorshift; its cost, about a nanosecond, is included).
//! - `put_new`: [`Store::apply`] of a Put for a key the store does not
//!   have. Timed in runs of 4096 new keys, each followed (untimed) by
//!   [`Store::rollback`], which removes them again: the store stays at one
//!   million keys and no run pays for the table growing.
//! - `overwrite_same_size`: a Put for an existing random key with a value
//!   of the same size, with [`Store::commit`] every 16 writes, as the
//!   server commits once per loop iteration (commit frees what the writes
//!   replaced, so that cost is in the figure).
//!
//! Every write takes a fresh version from [`Store::next_version`], as a
//! client write does.

mod util;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kvstore::storage::record::{FLAG_ORDERED, Op, Record};
use kvstore::storage::store::{Applied, Store};
use util::{KEY_LEN, Rng, key, value};

const KEYS: usize = 1_000_000;
/// New keys inserted per timed run of `put_new` before the rollback.
const NEW_RUN: usize = 4096;
/// Writes between commits: one simulated loop iteration.
const BATCH: u64 = 16;
/// Tombstone stamp; no write here deletes.
const NOW: u32 = 1;

fn put<'a>(store: &mut Store, k: &'a [u8], v: &'a [u8]) -> Applied {
    let version = store.next_version(1);
    store.apply(&Record { op: Op::Put, flags: FLAG_ORDERED, version, key: k, value: v, deadline: None }, NOW)
}

struct Fixture {
    store: Store,
    keys: Vec<[u8; KEY_LEN]>,
    new_keys: Vec<[u8; KEY_LEN]>,
}

fn fixture() -> Fixture {
    let keys: Vec<_> = (0..KEYS as u64).map(|i| key(b"key:", i)).collect();
    let new_keys: Vec<_> = (0..NEW_RUN as u64).map(|i| key(b"new:", i)).collect();
    let mut store = Store::new(false);
    let v = value(0);
    for (i, k) in keys.iter().enumerate() {
        put(&mut store, k, &v);
        if i % 1024 == 1023 {
            store.commit();
        }
    }
    store.commit();
    assert_eq!(store.len(), KEYS);
    Fixture { store, keys, new_keys }
}

fn store_1m(c: &mut Criterion) {
    let Fixture { mut store, keys, new_keys } = fixture();
    let mut rng = Rng::new(42);
    let mut g = c.benchmark_group("store_1m");
    g.throughput(Throughput::Elements(1));

    g.bench_function("get_hit", |b| {
        b.iter(|| {
            let k = &keys[rng.below(KEYS)];
            black_box(store.get(black_box(k))).expect("hit")
        })
    });

    g.bench_function("get_miss", |b| {
        b.iter(|| {
            // The key's digits are in range, the prefix is not.
            let k = key(b"nok:", rng.below(KEYS) as u64);
            assert!(black_box(store.get(black_box(&k))).is_none());
        })
    });

    let v = value(1);
    g.bench_function("put_new", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let n = (iters - done).min(NEW_RUN as u64) as usize;
                let start = Instant::now();
                for k in &new_keys[..n] {
                    black_box(put(&mut store, black_box(k), &v));
                }
                timed += start.elapsed();
                store.rollback();
                done += n as u64;
            }
            debug_assert_eq!(store.len(), KEYS);
            timed
        })
    });

    let values = [value(2), value(3)];
    let mut writes = 0u64;
    g.bench_function("overwrite_same_size", |b| {
        b.iter(|| {
            let k = &keys[rng.below(KEYS)];
            writes += 1;
            let r = put(&mut store, black_box(k), &values[(writes & 1) as usize]);
            if writes.is_multiple_of(BATCH) {
                store.commit();
            }
            black_box(r)
        })
    });
    store.commit();
    g.finish();
    assert_eq!(store.len(), KEYS);
}

criterion_group! {
    name = benches;
    config = util::config();
    targets = store_1m
}
criterion_main!(benches);
