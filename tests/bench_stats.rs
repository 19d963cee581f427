//! `scripts/paired-ratio.awk`, the statistics `scripts/bench` prints for each ratio: the median
//! of the per-run ratios and its distribution-free 95 % confidence interval; and
//! `scripts/bench-pool`, which pools the pairs of several bench runs into one such ratio. Known
//! inputs, exact answers (the interval's ranks are those of the binomial distribution, worked
//! out by hand).

use std::process::Command;

/// The script's output for run times `a` and `b` (space-separated milliseconds).
fn paired(a: &str, b: &str) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/paired-ratio.awk");
    let out = Command::new("awk")
        .args([
            "-v",
            &format!("a={a}"),
            "-v",
            &format!("b={b}"),
            "-f",
            script,
        ])
        .output()
        .expect("awk runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .trim_end()
        .to_string()
}

fn join(times: impl IntoIterator<Item = u32>) -> String {
    times
        .into_iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Run i of A is divided by run i of B: pairs, not the two lists sorted on their own.
#[test]
fn each_run_is_divided_by_the_peers_run_of_the_same_turn() {
    // Ratios 2, 0.5, 1, 4, 0.25, 1, 1: median 1. Sorting each list on its own would pair 10
    // with 10, 20 with 20 … and give 1 for every run, which this input tells apart by its ends.
    let a = "20 10 30 40 10 50 60";
    let b = "10 20 30 10 40 50 60";
    // n = 7: P(X <= 0) = 1/128 <= 0.025 < P(X <= 1) = 8/128, so the 1st smallest to the 1st largest.
    assert_eq!(paired(a, b), "1.00; 0.25–4.00");
}

/// The interval's ranks follow the binomial distribution: with 11 runs the 2nd smallest and
/// the 2nd largest (P(X <= 1) = 12/2048 <= 0.025 < P(X <= 2) = 67/2048); with 33 the 11th and
/// 23rd; with 99 the 40th and 60th. Ratios 1, 2, … n in a shuffled order.
#[test]
fn the_interval_is_between_the_order_statistics_the_binomial_gives() {
    for (n, low, high) in [(11u32, 2u32, 10u32), (33, 11, 23), (99, 40, 60)] {
        // A fixed permutation of 1..=n (7 is prime to 11, 33 and 99), so the script has to sort.
        let ratios: Vec<u32> = (0..n).map(|i| (i * 7) % n + 1).collect();
        let a = join(ratios.iter().copied());
        let b = join(std::iter::repeat_n(1, n as usize));
        let median = n.div_ceil(2);
        assert_eq!(
            paired(&a, &b),
            format!("{median}.00; {low}.00–{high}.00"),
            "{n} runs"
        );
    }
}

/// With six runs the whole range is a 96.9 % interval; with five no interval reaches 95 %.
#[test]
fn fewer_than_six_runs_give_no_interval() {
    assert_eq!(paired("1 2 3 4 5 6", "1 1 1 1 1 1"), "3.50; 1.00–6.00");
    assert_eq!(paired("1 2 3 4 5", "1 1 1 1 1"), "3.00; –");
}

/// Lists of different lengths, or none, give no ratio at all.
#[test]
fn unpaired_or_missing_runs_give_no_ratio() {
    assert_eq!(paired("1 2 3", "1 2"), "–");
    assert_eq!(paired("", ""), "–");
}

/// `scripts/bench-pool` on these raw files (name, text): its exit status, stdout and stderr.
fn pool(files: &[(&str, &str)], figures: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let paths: Vec<std::path::PathBuf> = files
        .iter()
        .map(|(name, text)| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("raw file written");
            path
        })
        .collect();
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/bench-pool"))
        .args(&paths)
        .env("BENCH_POOL_FIGURES", figures)
        .output()
        .expect("bench-pool runs");
    (
        out.status.success(),
        String::from_utf8(out.stdout).expect("UTF-8"),
        String::from_utf8(out.stderr).expect("UTF-8"),
    )
}

/// The table row of `figure` on `daemon`.
fn row<'a>(table: &'a str, figure: &str, daemon: &str) -> &'a str {
    let start = format!("| {figure} | {daemon} |");
    table
        .lines()
        .find(|line| line.starts_with(&start))
        .unwrap_or_else(|| panic!("no {figure} row for {daemon} in:\n{table}"))
}

/// The pairs of every file go into one list: the pooled ratio is that of all the pairs, not a
/// mean of each file's, and each file's runs are paired with the peer's runs of the same file.
#[test]
fn pooling_pairs_each_file_s_runs_and_takes_the_ratio_of_all_the_pairs() {
    // File 1: ratios 2, 2, 2 (sysfile slower); file 2: 0.5, 0.5, 0.5, 0.5 — seven pairs in all,
    // median 0.5, the whole range (n = 7) the interval. Pairing across files, or sorting each
    // list on its own, would give other ratios.
    let first = "# run one\ncold/buildctl/sysfile\t20 20 20\ncold/buildctl/df-gateway\t10 10 10\n";
    let second = "# run two\n# its machine\ncold/buildctl/sysfile\t5 5 5 5\ncold/buildctl/df-gateway\t10 10 10 10\n\
                  cold/buildctl/df-builtin\t5 5 5 5\n";
    let (ok, table, stderr) = pool(&[("a.tsv", first), ("b.tsv", second)], "cold");
    assert!(ok, "{stderr}");
    assert_eq!(
        row(&table, "cold", "buildctl"),
        "| cold | buildctl | 0.50; 0.50–2.00 (7 pairs, 2 runs) | 1.00; – (4 pairs, 1 runs) |"
    );
    // What was pooled is said above the table, with each file's own lines.
    for said in ["a.tsv`", "  run one", "b.tsv`", "  its machine"] {
        assert!(table.contains(said), "{said} in:\n{table}");
    }
    // A figure or daemon no file has gets no row.
    assert!(!table.contains("| cold | docker |"), "{table}");
}

/// Runs that cannot be paired are refused, loudly, rather than pooled wrong.
#[test]
fn pooling_refuses_a_file_whose_peers_ran_different_numbers_of_times() {
    let bad = "cold/docker/sysfile\t1 2 3\ncold/docker/df-gateway\t1 2\n";
    let (ok, _, stderr) = pool(&[("bad.tsv", bad)], "cold");
    assert!(!ok);
    assert!(
        stderr.contains(
            "bad.tsv: cold/docker: sysfile and df-gateway have different numbers of runs"
        ),
        "{stderr}"
    );
}
