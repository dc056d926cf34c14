//! Keeps `make bench` from rotting: a few hundred requests through the load generator against
//! the injector and the floor server. Nothing is timed or asserted about speed.

use std::process::Command;

#[test]
fn load_generator_smoke_run() {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("--server-bin")
        .arg(env!("CARGO_BIN_EXE_proxy-injector"))
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
    ] {
        assert!(
            stdout.contains(needle),
            "{needle:?} missing from:\n{stdout}"
        );
    }
}
