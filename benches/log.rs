//! Log benches: the record codec, appending, and replay.
//!
//! Groups:
//! - `record`: [`Record::encode`] into a reused buffer and
//!   [`Record::decode`] of one Put (16-byte key, 32-byte value).
//! - `append`: [`AppendLog::stage`] of a batch of 16 or 256 records, then
//!   one [`AppendLog::commit`] (`--fsync no`: a `pwrite`, no fsync), as one
//!   loop iteration of the server. The log is swapped for an empty one,
//!   untimed, whenever it passes 64 MiB.
//! - `replay`: [`AppendLog::open`] of a log of 100,000 Puts (7 MB, in the
//!   page cache after the first run), with a closure that does nothing and
//!   with one that applies every record to an empty [`Store`] as the server
//!   does at start-up (journaling off).

mod util;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use kvstore::storage::log::AppendLog;
use kvstore::storage::record::{FLAG_ORDERED, Op, Record, Version};
use kvstore::storage::store::Store;
use util::{KEY_LEN, TempDir, key, value};

const REPLAY_RECORDS: u64 = 100_000;

fn record<'a>(k: &'a [u8], v: &'a [u8], counter: u64) -> Record<'a> {
    Record { op: Op::Put, flags: FLAG_ORDERED, version: Version::new(counter, 1), key: k, value: v, deadline: None }
}

fn codec(c: &mut Criterion) {
    let (k, v) = (key(b"key:", 123_456), value(0));
    let rec = record(&k, &v, 42);
    let mut buf = Vec::with_capacity(256);
    rec.encode(&mut buf);
    let encoded = buf.clone();

    let mut g = c.benchmark_group("record");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode", |b| {
        b.iter(|| {
            buf.clear();
            black_box(&rec).encode(&mut buf);
            black_box(&buf);
        })
    });
    g.bench_function("decode", |b| b.iter(|| Record::decode(black_box(&encoded), 1 << 20).expect("decodes")));
    g.finish();
}

fn append(c: &mut Criterion) {
    let (mut log, mut dir) = util::fresh_log("append");
    let keys: Vec<[u8; KEY_LEN]> = (0..256).map(|i| key(b"key:", i)).collect();
    let v = value(0);
    let mut counter = 0;

    let mut g = c.benchmark_group("append");
    for batch in [16usize, 256] {
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(format!("stage_commit/{batch}"), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    // Stretches of at most 4 MiB of records, so the log can
                    // be swapped for an empty one between them, untimed.
                    let n = (iters - done).min((4 << 20) / (batch as u64 * 70) + 1);
                    let start = Instant::now();
                    for _ in 0..n {
                        for k in &keys[..batch] {
                            counter += 1;
                            log.stage(&record(k, &v, counter));
                        }
                        log.commit().expect("commit");
                    }
                    timed += start.elapsed();
                    done += n;
                    util::rotate_if_big(&mut log, &mut dir, "append");
                }
                timed
            })
        });
    }
    g.finish();
}

fn replay(c: &mut Criterion) {
    let dir = TempDir::new("replay");
    let cfg = util::log_config(dir.path());
    {
        let (mut log, _) = AppendLog::open(&cfg, |_| {}).expect("open");
        let v = value(0);
        for i in 0..REPLAY_RECORDS {
            // Distinct keys: the store grows to 100k keys, as a log of
            // 100k distinct writes rebuilds.
            log.stage(&record(&key(b"key:", i), &v, i + 1));
            if i % 1024 == 1023 {
                log.commit().expect("commit");
            }
        }
        log.commit().expect("commit");
    }

    let mut g = c.benchmark_group("replay");
    // Milliseconds per iteration: flat sampling, ten samples, fits the
    // two-second budget.
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    g.throughput(Throughput::Elements(REPLAY_RECORDS));
    g.bench_function("open_100k/noop", |b| {
        b.iter(|| {
            let mut n = 0u64;
            let (log, stats) = AppendLog::open(&cfg, |r| {
                black_box(r);
                n += 1;
            })
            .expect("open");
            assert_eq!((n, stats.records), (REPLAY_RECORDS, REPLAY_RECORDS));
            drop(log);
        })
    });
    g.bench_function("open_100k/apply_to_store", |b| {
        b.iter_batched(
            || {
                let mut store = Store::new(false);
                store.set_journaling(false);
                store
            },
            |mut store| {
                let (log, _) = AppendLog::open(&cfg, |r| {
                    store.apply(r, 1);
                })
                .expect("open");
                drop(log);
                assert_eq!(store.len(), REPLAY_RECORDS as usize);
                // Returned, so freeing 100k keys is not timed.
                store
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = util::config();
    targets = codec, append, replay
}
criterion_main!(benches);
