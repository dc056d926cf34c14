//! Golden outputs of `explain` for a running meshed pod in three states a pod gets stuck in
//! (tests/explain/NAME.json → NAME.txt): the verdict, whose fault it is, and the fix.
//! `UPDATE_GOLDEN=1` rewrites the outputs that differ and fails, naming them, so that the
//! diff is reviewed.

use std::path::Path;
use std::sync::Arc;

use proxy_injector::admission::Admission;
use proxy_injector::config::Config;
use proxy_injector::explain::explain_running_pod;
use proxy_injector::namespaces::Namespaces;

#[test]
fn explain_says_how_a_meshed_pod_is_doing() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/explain");
    let ns = Namespaces::from_yaml(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n",
        "t",
    )
    .unwrap();
    let admission = Admission::new(Arc::new(Config::default()), ns);
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    cases.sort();
    assert_eq!(cases.len(), 3, "three golden cases in {}", dir.display());
    let mut differ = Vec::new();
    for case in cases {
        let pod: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&case).unwrap()).unwrap();
        let lines =
            explain_running_pod(&admission, &pod, Some("shop"), Err("not read in this test"));
        let got = lines.join("\n") + "\n";
        let expected_path = case.with_extension("txt");
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got != expected {
            if update {
                std::fs::write(&expected_path, &got).unwrap();
            }
            differ.push(format!(
                "{}:\n--- expected\n{expected}--- got\n{got}",
                expected_path.display()
            ));
        }
    }
    assert!(
        differ.is_empty(),
        "{}{}",
        if update {
            "UPDATE_GOLDEN=1 rewrote these; review `git diff tests/explain`, then run again without it:\n"
        } else {
            ""
        },
        differ.join("\n")
    );
}
