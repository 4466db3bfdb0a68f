//! Cross-modal retrieval: ranks, Recall@K and mAP@10 (method spec §6.3, §10 item 22).
//!
//! Reference protocol: `LAION-AI/CLAP:src/laion_clap/training/train.py`
//! (`evaluate_clotho_audiocaps`), with the spec's deterministic tie rule.
//!
//! # Rank of a positive
//!
//! Similarity is cosine. For a query with a single positive candidate `p`,
//! `rank(p) = 1 + #{candidates j : s_j > s_p}` — ties are broken in favour of the positive, so
//! the result never depends on candidate order. With several positives (Clotho A2T: a clip and
//! its 5 captions) the positives are ordered by `(similarity descending, index ascending)` and
//! the `i`-th positive (1-based) gets `r_i = i + #{negatives j : s_j > s_{p_i}}`; the query's
//! rank is `r_1 = 1 + #{candidates strictly above its best positive}`, i.e. the best (minimum)
//! rank among its positives. NaN similarities of negatives never outrank a positive; a
//! non-finite similarity of a positive is an error.
//!
//! # Scores
//!
//! * `R@K = mean over queries of [r_1 ≤ K]`.
//! * `mAP@10 = mean over queries of (1/|P|) Σ_{i : r_i ≤ 10} i / r_i` — LAION-CLAP's
//!   definition (for one positive: `1/r` if `r ≤ 10`, else 0).
//!
//! # Protocols
//!
//! * Clotho T2A: each of the `5N` captions is a query over the `N` clips, its positive its own
//!   clip ([`Positives::text_to_audio`]). Clotho A2T: each clip is a query over all `5N`
//!   captions, positives its 5 captions ([`Positives::audio_to_text`]).
//! * AVE / VGGSound I2A and A2I: `N × N`, one positive per query ([`Positives::diagonal`]).
//!
//! Ranks are computed one query row at a time (in parallel with rayon), so evaluating from
//! embeddings ([`rank_embeddings`]) never materialises more than a block of similarity rows.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};
use crate::matrix::{MatrixRef, dot, l2_normalize_rows};

/// Query rows computed together by [`rank_embeddings`] (a block of `QUERY_BLOCK × candidates`
/// similarities lives in memory per worker thread).
pub const QUERY_BLOCK: usize = 32;

/// The positive candidates of every query, stored compactly (CSR layout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Positives {
    offsets: Vec<usize>,
    indices: Vec<usize>,
    n_candidates: usize,
}

impl Positives {
    /// `N × N` retrieval: query `i`'s only positive is candidate `i`.
    pub fn diagonal(n: usize) -> Self {
        Self {
            offsets: (0..=n).collect(),
            indices: (0..n).collect(),
            n_candidates: n,
        }
    }

    /// One positive per query: `positive[i]` for query `i`.
    pub fn one_each(positive: &[usize], n_candidates: usize) -> Result<Self> {
        if let Some(&bad) = positive.iter().find(|&&p| p >= n_candidates) {
            return Err(EvalError::Index {
                what: "positive",
                index: bad,
                bound: n_candidates,
            });
        }
        Ok(Self {
            offsets: (0..=positive.len()).collect(),
            indices: positive.to_vec(),
            n_candidates,
        })
    }

    /// Arbitrary non-empty positive sets (duplicates are removed).
    pub fn sets(sets: &[Vec<usize>], n_candidates: usize) -> Result<Self> {
        let mut offsets = Vec::with_capacity(sets.len() + 1);
        let mut indices = Vec::new();
        offsets.push(0);
        for set in sets {
            if set.is_empty() {
                return Err(EvalError::Empty("positive set"));
            }
            let mut s = set.clone();
            s.sort_unstable();
            s.dedup();
            if let Some(&bad) = s.iter().find(|&&p| p >= n_candidates) {
                return Err(EvalError::Index {
                    what: "positive",
                    index: bad,
                    bound: n_candidates,
                });
            }
            indices.extend(s);
            offsets.push(indices.len());
        }
        Ok(Self {
            offsets,
            indices,
            n_candidates,
        })
    }

    /// Text → audio: query `c` (a caption) has its clip `caption_clip[c]` as only positive.
    pub fn text_to_audio(caption_clip: &[usize], n_clips: usize) -> Result<Self> {
        Self::one_each(caption_clip, n_clips)
    }

    /// Audio → text: query `a` (a clip) has all captions `c` with `caption_clip[c] == a` as
    /// positives. Every clip must have at least one caption.
    pub fn audio_to_text(caption_clip: &[usize], n_clips: usize) -> Result<Self> {
        let mut sets = vec![Vec::new(); n_clips];
        for (c, &a) in caption_clip.iter().enumerate() {
            if a >= n_clips {
                return Err(EvalError::Index {
                    what: "caption clip",
                    index: a,
                    bound: n_clips,
                });
            }
            sets[a].push(c);
        }
        Self::sets(&sets, caption_clip.len())
    }

    /// The Clotho caption layout: `captions_per_clip` consecutive captions per clip
    /// (caption `c` belongs to clip `c / captions_per_clip`), as in LAION-CLAP.
    pub fn grouped_caption_clips(n_clips: usize, captions_per_clip: usize) -> Vec<usize> {
        (0..n_clips * captions_per_clip)
            .map(|c| c / captions_per_clip.max(1))
            .collect()
    }

    /// Number of queries.
    pub fn n_queries(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Number of candidates the indices refer to.
    pub fn n_candidates(&self) -> usize {
        self.n_candidates
    }

    /// The positives of query `i`.
    pub fn of(&self, i: usize) -> &[usize] {
        &self.indices[self.offsets[i]..self.offsets[i + 1]]
    }
}

/// Ranks of the positives of one query row (ascending; see the module docs for the rule).
///
/// `row` holds the similarities of the query to every candidate.
pub fn positive_ranks(row: &[f32], positives: &[usize]) -> Result<Vec<usize>> {
    let mut pos: Vec<(f32, usize)> = Vec::with_capacity(positives.len());
    for &p in positives {
        let s = *row.get(p).ok_or(EvalError::Index {
            what: "positive",
            index: p,
            bound: row.len(),
        })?;
        if !s.is_finite() {
            return Err(EvalError::NonFinite("similarity of a positive"));
        }
        pos.push((s, p));
    }
    if pos.is_empty() {
        return Err(EvalError::Empty("positive set"));
    }
    // Positives by (similarity descending, index ascending).
    pos.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let vals: Vec<f32> = pos.iter().map(|p| p.0).collect();
    let m = vals.len();
    // hist[t]: candidates s with exactly t positives at or above s (they beat positives t..m).
    let mut hist = vec![0usize; m + 1];
    if m == 1 {
        let v = vals[0];
        hist[0] = row.iter().filter(|&&s| s > v).count();
    } else {
        let min = vals[m - 1];
        for &s in row {
            if s > min {
                // number of positives with value >= s (vals is descending)
                let t = vals.partition_point(|&v| v >= s);
                hist[t] += 1;
            }
        }
        // Remove the positives' own contributions (a positive never counts against another).
        for &s in &vals {
            if s > min {
                let t = vals.partition_point(|&v| v >= s);
                hist[t] -= 1;
            }
        }
    }
    let mut ranks = Vec::with_capacity(m);
    let mut above = 0usize;
    for (i, h) in hist.iter().take(m).enumerate() {
        above += h;
        ranks.push(i + 1 + above);
    }
    Ok(ranks)
}

/// Ranks for every query of a materialised similarity matrix `[queries, candidates]`.
pub fn rank_similarities(sim: MatrixRef<'_>, positives: &Positives) -> Result<Vec<Vec<usize>>> {
    check_positives(sim.rows(), sim.cols(), positives)?;
    (0..sim.rows())
        .into_par_iter()
        .map(|i| positive_ranks(sim.row(i), positives.of(i)))
        .collect()
}

/// Ranks for every query, from embeddings: cosine similarity of the L2-normalised rows of
/// `queries` `[Q, D]` and `candidates` `[C, D]`, computed [`QUERY_BLOCK`] rows at a time.
pub fn rank_embeddings(
    queries: MatrixRef<'_>,
    candidates: MatrixRef<'_>,
    positives: &Positives,
) -> Result<Vec<Vec<usize>>> {
    if queries.cols() != candidates.cols() {
        return Err(EvalError::shape(
            "rank_embeddings",
            format!(
                "query dimension {} != candidate dimension {}",
                queries.cols(),
                candidates.cols()
            ),
        ));
    }
    check_positives(queries.rows(), candidates.rows(), positives)?;
    let q = l2_normalize_rows(queries);
    let c = l2_normalize_rows(candidates);
    let n_c = c.rows();
    let blocks: Vec<usize> = (0..q.rows()).step_by(QUERY_BLOCK).collect();
    let per_block: Result<Vec<Vec<Vec<usize>>>> = blocks
        .into_par_iter()
        .map(|start| {
            let end = (start + QUERY_BLOCK).min(q.rows());
            let b = end - start;
            let mut buf = vec![0.0f32; b * n_c];
            for j in 0..n_c {
                let cand = c.row(j);
                for k in 0..b {
                    buf[k * n_c + j] = dot(q.row(start + k), cand);
                }
            }
            (0..b)
                .map(|k| positive_ranks(&buf[k * n_c..(k + 1) * n_c], positives.of(start + k)))
                .collect()
        })
        .collect();
    Ok(per_block?.into_iter().flatten().collect())
}

fn check_positives(rows: usize, cols: usize, positives: &Positives) -> Result<()> {
    if positives.n_queries() != rows || positives.n_candidates() != cols {
        return Err(EvalError::shape(
            "positives",
            format!(
                "positives describe {} queries × {} candidates, similarities are {rows} × {cols}",
                positives.n_queries(),
                positives.n_candidates()
            ),
        ));
    }
    if rows == 0 || cols == 0 {
        return Err(EvalError::Empty("retrieval"));
    }
    Ok(())
}

/// Retrieval scores of one direction (fractions in `[0, 1]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrievalMetrics {
    /// Recall@1.
    pub r_at_1: f64,
    /// Recall@5.
    pub r_at_5: f64,
    /// Recall@10.
    pub r_at_10: f64,
    /// mAP@10 (LAION-CLAP definition, see the module docs).
    pub map_at_10: f64,
    /// Mean of the best rank of each query.
    pub mean_rank: f64,
    /// Median of the best rank of each query (mean of the two middle values for an even count).
    pub median_rank: f64,
    /// Number of queries.
    pub n_queries: usize,
}

/// `(1/|P|) Σ_{i : r_i ≤ k} i / r_i` for the ascending positive ranks of one query.
pub fn average_precision_at(ranks: &[usize], k: usize) -> f64 {
    if ranks.is_empty() {
        return 0.0;
    }
    let s: f64 = ranks
        .iter()
        .enumerate()
        .filter(|&(_, &r)| r <= k)
        .map(|(i, &r)| (i + 1) as f64 / r as f64)
        .sum();
    s / ranks.len() as f64
}

/// Fraction of queries whose best rank is `≤ k`.
pub fn recall_at(ranks: &[Vec<usize>], k: usize) -> f64 {
    if ranks.is_empty() {
        return 0.0;
    }
    ranks
        .iter()
        .filter(|r| r.first().is_some_and(|&r| r <= k))
        .count() as f64
        / ranks.len() as f64
}

impl RetrievalMetrics {
    /// Scores from per-query ascending positive ranks (as returned by [`rank_similarities`]).
    pub fn from_ranks(ranks: &[Vec<usize>]) -> Result<Self> {
        if ranks.is_empty() {
            return Err(EvalError::Empty("ranks"));
        }
        let mut best: Vec<usize> = Vec::with_capacity(ranks.len());
        for r in ranks {
            best.push(
                *r.first()
                    .ok_or(EvalError::Empty("positive ranks of a query"))?,
            );
        }
        let n = ranks.len() as f64;
        best.sort_unstable();
        let mid = best.len() / 2;
        let median_rank = if best.len() % 2 == 1 {
            best[mid] as f64
        } else {
            (best[mid - 1] + best[mid]) as f64 / 2.0
        };
        Ok(Self {
            r_at_1: recall_at(ranks, 1),
            r_at_5: recall_at(ranks, 5),
            r_at_10: recall_at(ranks, 10),
            map_at_10: ranks
                .iter()
                .map(|r| average_precision_at(r, 10))
                .sum::<f64>()
                / n,
            mean_rank: best.iter().map(|&r| r as f64).sum::<f64>() / n,
            median_rank,
            n_queries: ranks.len(),
        })
    }
}

/// Retrieval in both directions between audio and another modality (text or image).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrossModalRetrieval {
    /// Audio queries over the other modality's items (A2T, A2I).
    pub audio_to_other: RetrievalMetrics,
    /// The other modality's items as queries over audio clips (T2A, I2A).
    pub other_to_audio: RetrievalMetrics,
}

/// Both directions from embeddings: `audio` `[N, D]`, `other` `[M, D]` with `other_clip[m]`
/// the audio clip item `m` belongs to (`M = N` and the identity for AVE/VGGSound; Clotho:
/// [`Positives::grouped_caption_clips`]). Embeddings are L2-normalised inside.
pub fn cross_modal_retrieval(
    audio: MatrixRef<'_>,
    other: MatrixRef<'_>,
    other_clip: &[usize],
) -> Result<CrossModalRetrieval> {
    if other_clip.len() != other.rows() {
        return Err(EvalError::shape(
            "other_clip",
            format!("{} entries for {} items", other_clip.len(), other.rows()),
        ));
    }
    let a2o = Positives::audio_to_text(other_clip, audio.rows())?;
    let o2a = Positives::text_to_audio(other_clip, audio.rows())?;
    Ok(CrossModalRetrieval {
        audio_to_other: RetrievalMetrics::from_ranks(&rank_embeddings(audio, other, &a2o)?)?,
        other_to_audio: RetrievalMetrics::from_ranks(&rank_embeddings(other, audio, &o2a)?)?,
    })
}

/// As [`cross_modal_retrieval`] with explicit positives in both directions (e.g. duplicates
/// counted as correct): `audio_to_other` has a query per audio row over the other items,
/// `other_to_audio` a query per other item over the audio rows.
///
/// # Errors
/// Shapes of the positives that do not match the matrices.
pub fn cross_modal_retrieval_with(
    audio: MatrixRef<'_>,
    other: MatrixRef<'_>,
    audio_to_other: &Positives,
    other_to_audio: &Positives,
) -> Result<CrossModalRetrieval> {
    let fits = |p: &Positives, q: usize, c: usize| p.n_queries() == q && p.n_candidates() == c;
    if !fits(audio_to_other, audio.rows(), other.rows())
        || !fits(other_to_audio, other.rows(), audio.rows())
    {
        return Err(EvalError::shape(
            "positives",
            format!(
                "{} audio and {} other items do not match the positives",
                audio.rows(),
                other.rows()
            ),
        ));
    }
    Ok(CrossModalRetrieval {
        audio_to_other: RetrievalMetrics::from_ranks(&rank_embeddings(
            audio,
            other,
            audio_to_other,
        )?)?,
        other_to_audio: RetrievalMetrics::from_ranks(&rank_embeddings(
            other,
            audio,
            other_to_audio,
        )?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_positive_ties_favour_the_positive() {
        let row = [0.5, 0.9, 0.5, 0.1];
        assert_eq!(positive_ranks(&row, &[0]).unwrap(), vec![2]);
        assert_eq!(positive_ranks(&row, &[2]).unwrap(), vec![2]);
        assert_eq!(positive_ranks(&row, &[1]).unwrap(), vec![1]);
        assert_eq!(positive_ranks(&row, &[3]).unwrap(), vec![4]);
    }

    #[test]
    fn multi_positive_ranks_by_hand() {
        // candidates:    0    1    2    3    4    5
        let row = [0.2, 0.8, 0.5, 0.8, 0.9, 0.1];
        // positives 1, 3 (tied 0.8), 5: negatives above 0.8 → {4}; above 0.1 → {0, 2, 4}.
        assert_eq!(positive_ranks(&row, &[5, 3, 1]).unwrap(), vec![2, 3, 6]);
        let ap = average_precision_at(&[2, 3, 6], 10);
        assert!((ap - (1.0 / 2.0 + 2.0 / 3.0 + 3.0 / 6.0) / 3.0).abs() < 1e-12);
        assert!(positive_ranks(&[f32::NAN, 1.0], &[0]).is_err());
        assert_eq!(positive_ranks(&[0.5, f32::NAN], &[0]).unwrap(), vec![1]);
    }
}
