//! Keeps `make bench` from rotting: a few hundred requests through the load generator against
//! the injector and the floor server. Nothing is timed or asserted about speed.

use std::path::PathBuf;
use std::process::Command;

/// The injector binary. It belongs to another package of the workspace, so Cargo gives this
/// test no path to it: build it with the same cargo, profile and target directory (a no-op
/// when it is up to date) and take it from next to `loadgen`.
fn injector_bin() -> PathBuf {
    let loadgen = PathBuf::from(env!("CARGO_BIN_EXE_loadgen"));
    let profile_dir = loadgen.parent().expect("loadgen has a directory");
    let target_dir = profile_dir
        .parent()
        .expect("the profile directory has a parent");
    let mut cargo = Command::new(env!("CARGO"));
    // Without the variables Cargo sets for this test (CARGO_MANIFEST_DIR and the like): build
    // scripts that watch them (ring's) would be rerun, and the next build of the workspace
    // would rerun them once more.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let set_by_cargo = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
        ]
        .iter()
        .any(|p| key.starts_with(p))
            || [
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
                "OUT_DIR",
            ]
            .contains(&key.as_ref());
        if set_by_cargo {
            cargo.env_remove(key.as_ref());
        }
    }
    cargo
        .args([
            "build",
            "--quiet",
            "-p",
            "proxy-injector",
            "--bin",
            "proxy-injector",
        ])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile_dir.ends_with("release") {
        cargo.arg("--release");
    }
    let st = cargo.status().expect("run cargo build for proxy-injector");
    assert!(st.success(), "cargo build -p proxy-injector failed");
    profile_dir.join("proxy-injector")
}

#[test]
fn load_generator_smoke_run() {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("--server-bin")
        .arg(injector_bin())
        .arg("--floor-bin")
        .arg(env!("CARGO_BIN_EXE_floor"))
        .args([
            "--corpus",
            "small,mixed",
            "--requests",
            "300",
            "--warmup",
            "30",
        ])
        .args([
            "--concurrency",
            "4",
            "--rate",
            "100",
            "--rate-seconds",
            "1",
            "--max-seconds",
            "60",
        ])
        .output()
        .expect("run loadgen");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "loadgen failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "| small closed",
        "| mixed closed",
        "| mixed open 100/s",
        "ratio",
        "errors: 0",
        "small floor: constant answer of ",
    ] {
        assert!(
            stdout.contains(needle),
            "{needle:?} missing from:\n{stdout}"
        );
    }
}
