//! Retrieval metrics against a brute-force ranking, and their properties: invariance to
//! candidate order, 1.0 for a perfect similarity matrix, agreement of the streaming
//! (embedding) and materialised (similarity) paths.

use accrue_eval::matrix::{Matrix, cosine_similarity};
use accrue_eval::retrieval::{
    Positives, RetrievalMetrics, cross_modal_retrieval, rank_embeddings, rank_similarities,
};

/// Reproducible random cases from the project's one SplitMix64.
struct Rng(accrue_core::seed::SplitMix64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// A value on a coarse grid of `levels` steps in [0, 1) — many exact ties.
    fn coarse(&mut self, levels: usize) -> f32 {
        self.below(levels) as f32 / levels as f32
    }
    fn uniform(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            v.swap(i, self.below(i + 1));
        }
        v
    }
}

/// Brute force: sort every candidate by (similarity descending, positives before negatives,
/// positives by index); a positive's rank is its 1-based position in that order. mAP@10 and
/// R@K are then computed from positions exactly as LAION-CLAP does from an argsort.
fn brute_force(sim: &Matrix, positives: &Positives) -> (Vec<f64>, f64) {
    let mut hits = [0usize; 3];
    let mut map = 0.0;
    for q in 0..sim.rows() {
        let row = sim.row(q);
        let pos = positives.of(q);
        let mut order: Vec<usize> = (0..row.len()).collect();
        order.sort_by(|&a, &b| {
            row[b]
                .partial_cmp(&row[a])
                .expect("finite")
                .then(pos.contains(&b).cmp(&pos.contains(&a)))
                .then(a.cmp(&b))
        });
        let positions: Vec<usize> = order
            .iter()
            .enumerate()
            .filter(|(_, c)| pos.contains(c))
            .map(|(i, _)| i)
            .collect();
        let best = positions[0] + 1;
        for (h, k) in hits.iter_mut().zip([1, 5, 10]) {
            *h += usize::from(best <= k);
        }
        let f: Vec<usize> = positions.into_iter().filter(|&p| p < 10).collect();
        map += f
            .iter()
            .enumerate()
            .map(|(i, &p)| (i + 1) as f64 / (p + 1) as f64)
            .sum::<f64>()
            / pos.len() as f64;
    }
    let n = sim.rows() as f64;
    (hits.iter().map(|&h| h as f64 / n).collect(), map / n)
}

fn random_case(rng: &mut Rng, queries: usize, candidates: usize, levels: usize) -> Matrix {
    let data = (0..queries * candidates)
        .map(|_| rng.coarse(levels))
        .collect();
    Matrix::new(data, queries, candidates).expect("matrix")
}

#[test]
fn matches_brute_force_with_ties_single_and_multi_positive() {
    let mut rng = Rng(accrue_core::seed::SplitMix64::new(1));
    for trial in 0..40 {
        let (q, c) = (1 + rng.below(30), 1 + rng.below(60));
        let levels = [3, 10, 1000][trial % 3];
        let sim = random_case(&mut rng, q, c, levels);
        let positives = if trial % 2 == 0 {
            Positives::one_each(&(0..q).map(|_| rng.below(c)).collect::<Vec<_>>(), c)
        } else {
            let sets: Vec<Vec<usize>> = (0..q)
                .map(|_| (0..1 + rng.below(5)).map(|_| rng.below(c)).collect())
                .collect();
            Positives::sets(&sets, c)
        }
        .expect("positives");
        let ranks = rank_similarities(sim.view(), &positives).expect("ranks");
        let m = RetrievalMetrics::from_ranks(&ranks).expect("metrics");
        let (recalls, map) = brute_force(&sim, &positives);
        assert_eq!(
            [m.r_at_1, m.r_at_5, m.r_at_10].to_vec(),
            recalls,
            "trial {trial}"
        );
        assert!(
            (m.map_at_10 - map).abs() < 1e-12,
            "trial {trial}: {} vs {map}",
            m.map_at_10
        );
    }
}

#[test]
fn invariant_to_candidate_order() {
    let mut rng = Rng(accrue_core::seed::SplitMix64::new(2));
    for trial in 0..20 {
        let (q, c) = (1 + rng.below(20), 2 + rng.below(40));
        let sim = random_case(&mut rng, q, c, 4); // heavy ties
        let sets: Vec<Vec<usize>> = (0..q)
            .map(|_| (0..1 + rng.below(4)).map(|_| rng.below(c)).collect())
            .collect();
        let positives = Positives::sets(&sets, c).expect("positives");
        let base =
            RetrievalMetrics::from_ranks(&rank_similarities(sim.view(), &positives).expect("r"))
                .expect("m");
        // new position of old candidate j is perm[j]
        let perm = rng.permutation(c);
        let mut data = vec![0.0f32; q * c];
        for i in 0..q {
            for j in 0..c {
                data[i * c + perm[j]] = sim.row(i)[j];
            }
        }
        let permuted = Matrix::new(data, q, c).expect("matrix");
        let sets_p: Vec<Vec<usize>> = sets
            .iter()
            .map(|s| s.iter().map(|&j| perm[j]).collect())
            .collect();
        let positives_p = Positives::sets(&sets_p, c).expect("positives");
        let other = RetrievalMetrics::from_ranks(
            &rank_similarities(permuted.view(), &positives_p).expect("r"),
        )
        .expect("m");
        assert_eq!(base, other, "trial {trial}");
    }
}

#[test]
fn perfect_similarity_scores_one() {
    let mut rng = Rng(accrue_core::seed::SplitMix64::new(3));
    // N×N: identical embeddings on both sides.
    let n = 50;
    let emb = Matrix::new((0..n * 8).map(|_| rng.uniform()).collect(), n, 8).expect("m");
    let r = cross_modal_retrieval(emb.view(), emb.view(), &(0..n).collect::<Vec<_>>()).expect("r");
    for m in [&r.audio_to_other, &r.other_to_audio] {
        assert_eq!(
            (m.r_at_1, m.r_at_5, m.r_at_10, m.map_at_10),
            (1.0, 1.0, 1.0, 1.0)
        );
        assert_eq!(m.mean_rank, 1.0);
    }
    // Clotho layout: every caption equals its clip's embedding (5 tied positives per clip).
    let per = 5;
    let clips = Positives::grouped_caption_clips(n, per);
    let text = emb.select_rows(&clips).expect("rows");
    let r = cross_modal_retrieval(emb.view(), text.view(), &clips).expect("r");
    for m in [&r.audio_to_other, &r.other_to_audio] {
        assert_eq!(
            (m.r_at_1, m.r_at_5, m.r_at_10, m.map_at_10),
            (1.0, 1.0, 1.0, 1.0)
        );
    }
    // A perfect similarity matrix (identity) with the materialised path too.
    let mut eye = vec![0.0f32; n * n];
    (0..n).for_each(|i| eye[i * n + i] = 1.0);
    let eye = Matrix::new(eye, n, n).expect("eye");
    let m = RetrievalMetrics::from_ranks(
        &rank_similarities(eye.view(), &Positives::diagonal(n)).expect("r"),
    )
    .expect("m");
    assert_eq!((m.r_at_1, m.map_at_10), (1.0, 1.0));
}

#[test]
fn streaming_and_materialised_paths_agree() {
    let mut rng = Rng(accrue_core::seed::SplitMix64::new(4));
    let (q, c, d) = (70, 90, 12); // q > QUERY_BLOCK: several blocks, one partial
    let a = Matrix::new((0..q * d).map(|_| rng.uniform()).collect(), q, d).expect("a");
    let b = Matrix::new((0..c * d).map(|_| rng.uniform()).collect(), c, d).expect("b");
    let positives = Positives::one_each(&(0..q).map(|i| i % c).collect::<Vec<_>>(), c).expect("p");
    let sim = cosine_similarity(a.view(), b.view()).expect("sim");
    assert_eq!(
        rank_embeddings(a.view(), b.view(), &positives).expect("stream"),
        rank_similarities(sim.view(), &positives).expect("dense")
    );
}

#[test]
fn malformed_inputs_are_errors() {
    let sim = Matrix::new(vec![0.0; 6], 2, 3).expect("m");
    assert!(rank_similarities(sim.view(), &Positives::diagonal(3)).is_err());
    assert!(Positives::one_each(&[3], 3).is_err());
    assert!(Positives::sets(&[vec![]], 3).is_err());
    assert!(Positives::audio_to_text(&[0, 0, 2], 2).is_err());
    assert!(RetrievalMetrics::from_ranks(&[]).is_err());
    let a = Matrix::new(vec![1.0; 4], 2, 2).expect("a");
    let b = Matrix::new(vec![1.0; 6], 2, 3).expect("b");
    assert!(cross_modal_retrieval(a.view(), b.view(), &[0, 1]).is_err());
}
