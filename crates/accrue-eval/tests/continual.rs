//! Continual-learning metrics against hand-computed values.

use accrue_eval::continual::{
    StageMatrix, average_accuracy, average_forgetting, backward_transfer, forward_transfer,
    intransigence, single_task_transfer, summarize, task_forgetting,
};

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-12, "{a} vs {b}");
}

/// R (rows: after stage i, cols: task j):
///   [0.40, 0.10, 0.05]
///   [0.35, 0.60, 0.20]
///   [0.30, 0.50, 0.70]
fn r3() -> StageMatrix {
    StageMatrix::from_dense(&[
        vec![0.40, 0.10, 0.05],
        vec![0.35, 0.60, 0.20],
        vec![0.30, 0.50, 0.70],
    ])
    .expect("matrix")
}

#[test]
fn gem_metrics_by_hand() {
    let r = r3();
    // ACC = (0.30 + 0.50 + 0.70) / 3 = 0.5
    close(average_accuracy(&r).unwrap(), 0.5);
    // BWT = ((0.30 − 0.40) + (0.50 − 0.60)) / 2 = −0.1
    close(backward_transfer(&r).unwrap(), -0.1);
    // FWT with b = [0, 0.05, 0.10]: ((0.10 − 0.05) + (0.20 − 0.10)) / 2 = 0.075
    let b = [Some(0.0), Some(0.05), Some(0.10)];
    close(forward_transfer(&r, &b).unwrap(), 0.075);
    // Single-task reading with baselines [-, 0.55, 0.75]: ((0.60−0.55) + (0.70−0.75)) / 2 = 0
    let base = [None, Some(0.55), Some(0.75)];
    close(single_task_transfer(&r, &base).unwrap(), 0.0);
}

#[test]
fn chaudhry_by_hand() {
    let r = r3();
    // f_0^2 = max(0.40, 0.35) − 0.30 = 0.10; f_1^2 = 0.60 − 0.50 = 0.10
    close(task_forgetting(&r, 0, 2).unwrap(), 0.10);
    close(task_forgetting(&r, 1, 2).unwrap(), 0.10);
    close(task_forgetting(&r, 0, 1).unwrap(), 0.05);
    assert_eq!(task_forgetting(&r, 2, 2), None);
    close(average_forgetting(&r, 2).unwrap(), 0.10);
    close(average_forgetting(&r, 1).unwrap(), 0.05);
    assert!(average_forgetting(&r, 0).is_err());
    // I_k = R*_k − R_{k,k} with R* = [0.42, 0.65, 0.70]
    let i = intransigence(&r, &[Some(0.42), Some(0.65), Some(0.70)]).unwrap();
    close(i[0].unwrap(), 0.02);
    close(i[1].unwrap(), 0.05);
    close(i[2].unwrap(), 0.0);
}

#[test]
fn missing_entries_and_summary() {
    // Cross-modal scores undefined before their head exists.
    let r = StageMatrix::new(
        vec!["A".into(), "AV".into(), "AT".into()],
        vec![
            "AudioSet mAP".into(),
            "VGGSound R@10".into(),
            "Clotho R@10".into(),
        ],
        vec![
            vec![Some(0.434), None, None],
            vec![Some(0.30), Some(0.25), None],
            vec![Some(0.28), Some(0.20), Some(0.35)],
        ],
    )
    .expect("matrix");
    close(
        backward_transfer(&r).unwrap(),
        ((0.28 - 0.434) + (0.20 - 0.25)) / 2.0,
    );
    assert!(forward_transfer(&r, &[None, None, None]).is_err());
    let s = summarize(&r, None, Some(&[None, Some(0.30), Some(0.40)]), None).unwrap();
    close(s.acc.unwrap(), (0.28 + 0.20 + 0.35) / 3.0);
    close(
        s.fwt_single_task.unwrap(),
        ((0.25 - 0.30) + (0.35 - 0.40)) / 2.0,
    );
    close(
        s.forgetting.unwrap(),
        ((0.434 - 0.28) + (0.25 - 0.20)) / 2.0,
    );
    assert_eq!(s.fwt, None);
    assert_eq!(s.forgetting_per_task[2], None);
    // Shape errors are errors.
    assert!(summarize(&r, Some(&[None]), None, None).is_err());
    assert!(StageMatrix::from_dense(&[vec![1.0, 2.0]]).is_err());
    assert!(StageMatrix::from_dense(&[vec![f64::NAN]]).is_err());
    assert!(backward_transfer(&StageMatrix::from_dense(&[vec![0.5]]).unwrap()).is_err());
}
