//! Replays every committed fuzz input on stable: the crash inputs under
//! `fuzz/regressions/<target>/` and the seed corpus under `fuzz/corpus/<target>/`, through the
//! same property checks the fuzz targets run (`rfc6455::__fuzz`).
//!
//! A new crash from `fuzz/run.sh` lands in `fuzz/artifacts/<target>/`; copy it to
//! `fuzz/regressions/<target>/` and it is replayed here from then on.

use rfc6455::{__fuzz, Role};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// The property check of one fuzz target: panics on a violation.
type Check = fn(&[u8]);

/// Each fuzz target's name and the check it runs.
const TARGETS: &[(&str, Check)] = &[
    ("frame_header", __fuzz::check_frame_header),
    ("server_connection", |d| {
        __fuzz::check_connection(Role::Server, d)
    }),
    ("client_connection", |d| {
        __fuzz::check_connection(Role::Client, d)
    }),
    ("handshake_request", __fuzz::check_handshake_request),
    ("handshake_response", __fuzz::check_handshake_response),
    ("primitives", __fuzz::check_primitives),
    #[cfg(feature = "tls")]
    ("tls_session", __fuzz::check_tls_session),
    #[cfg(feature = "deflate")]
    ("inflate", |d| {
        __fuzz::check_inflate(d);
        __fuzz::check_deflate_round_trip(d);
    }),
];

/// Runs `check` on every file in `fuzz/<kind>/<target>/`; returns how many ran and which failed.
fn replay(kind: &str, target: &str, check: Check) -> (usize, Vec<String>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return (0, Vec::new());
    };
    let mut paths: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
    paths.sort();
    let mut failed = Vec::new();
    for path in &paths {
        let data = std::fs::read(path).unwrap();
        if catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
            failed.push(path.display().to_string());
        }
    }
    (paths.len(), failed)
}

fn replay_all(kind: &str) -> usize {
    let mut total = 0;
    let mut failed = Vec::new();
    for &(target, check) in TARGETS {
        let (n, f) = replay(kind, target, check);
        total += n;
        failed.extend(f);
    }
    assert!(
        failed.is_empty(),
        "properties fail on:\n{}",
        failed.join("\n")
    );
    total
}

#[test]
fn crash_inputs_stay_fixed() {
    replay_all("regressions");
}

#[test]
fn every_seed_satisfies_the_properties() {
    assert!(replay_all("corpus") > 0, "the seed corpus is missing");
}

#[test]
fn every_fuzz_target_is_replayed() {
    // A target added to fuzz/Cargo.toml must be added to TARGETS too.
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/Cargo.toml"))
            .unwrap();
    for line in manifest.lines() {
        if let Some(name) = line.strip_prefix("name = \"") {
            let name = name.trim_end_matches('"');
            if name != "rfc6455-fuzz" {
                assert!(
                    TARGETS.iter().any(|(t, _)| *t == name),
                    "fuzz target {name} is not replayed"
                );
            }
        }
    }
}
