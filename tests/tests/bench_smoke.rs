//! `ferrobench forward --compare testpmd` really runs both programs: a short window at 64
//! bytes, every row parsed, both rates non-zero. (Speed itself is never asserted.)

use tests::{ferrobench, require_env, Scratch};

#[test]
fn ferrobench_forward_runs_ferrogate_and_testpmd() {
    require_env();
    let dir = Scratch::new("bench");
    let text = ferrobench(
        &[
            "forward",
            "--sizes",
            "64",
            "--warmup",
            "0.5",
            "--seconds",
            "1",
            "--compare",
            "testpmd",
        ],
        &dir.file("work"),
    );
    let mpps = |prog: &str| -> f64 {
        let l = text
            .lines()
            .find(|l| l.starts_with(prog))
            .unwrap_or_else(|| panic!("no {prog} row in:\n{text}"));
        l.split_whitespace()
            .rev()
            .nth(2)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("row '{l}'"))
    };
    assert!(mpps("ferrogate") > 0.0, "{text}");
    assert!(mpps("testpmd mac-fwd") > 0.0, "{text}");
    assert!(text.contains("ratio ferrogate/testpmd"), "{text}");
}
