//! Retrieval ranks and R@K at scale: 10k queries × 50k candidates.
//!
//! * `ranks_from_similarities`: a materialised `[10k, 50k]` similarity matrix (2 GB of `f32`),
//!   one pass per query row counting candidates strictly above the positive.
//! * `ranks_from_embeddings`: the same ranks from `[10k, D]` and `[50k, D]` embeddings,
//!   computing [`accrue_eval::retrieval::QUERY_BLOCK`] similarity rows at a time per thread
//!   (never materialising the full matrix).
//!
//! Run with `cargo bench -p accrue-eval --bench retrieval`.

use std::hint::black_box;

use accrue_eval::matrix::MatrixRef;
use accrue_eval::retrieval::{Positives, RetrievalMetrics, rank_embeddings, rank_similarities};
use criterion::{Criterion, criterion_group, criterion_main};

const QUERIES: usize = 10_000;
const CANDIDATES: usize = 50_000;
const DIM: usize = 64;

/// Deterministic pseudo-random values in [-1, 1) (SplitMix64).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut g = accrue_core::seed::SplitMix64::new(seed);
    (0..n)
        .map(|_| ((g.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0)
        .collect()
}

fn bench(c: &mut Criterion) {
    let positives: Vec<usize> = (0..QUERIES).map(|i| (i * 5) % CANDIDATES).collect();
    let positives = Positives::one_each(&positives, CANDIDATES).expect("positives");

    let mut group = c.benchmark_group("retrieval_10k_x_50k");
    group.sample_size(10);

    {
        let sim = values(QUERIES * CANDIDATES, 1);
        let view = MatrixRef::new(&sim, QUERIES, CANDIDATES).expect("shape");
        group.bench_function("ranks_from_similarities", |b| {
            b.iter(|| {
                let ranks = rank_similarities(black_box(view), &positives).expect("ranks");
                black_box(RetrievalMetrics::from_ranks(&ranks).expect("metrics"))
            })
        });
    }

    let q = values(QUERIES * DIM, 2);
    let k = values(CANDIDATES * DIM, 3);
    let (qv, kv) = (
        MatrixRef::new(&q, QUERIES, DIM).expect("shape"),
        MatrixRef::new(&k, CANDIDATES, DIM).expect("shape"),
    );
    group.bench_function(format!("ranks_from_embeddings_d{DIM}"), |b| {
        b.iter(|| {
            let ranks = rank_embeddings(black_box(qv), black_box(kv), &positives).expect("ranks");
            black_box(RetrievalMetrics::from_ranks(&ranks).expect("metrics"))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
