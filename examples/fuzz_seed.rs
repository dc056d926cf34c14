//! Writes the fuzz targets' seed corpora from the golden fixtures (`make fuzz` runs it):
//! `cargo run --example fuzz_seed -- FIXTURES_DIR CORPUS_DIR`.
//! corpus/review gets each fixture pod as an AdmissionReview; corpus/annotations gets each
//! override key's fixture values (first byte: the key's index).

use std::path::Path;

use proxy_injector::mesh::override_keys;
use serde_json::{Value, json};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (fixtures, corpus) = match args.as_slice() {
        [_, f, c] => (Path::new(f), Path::new(c)),
        _ => {
            eprintln!("usage: fuzz_seed FIXTURES_DIR CORPUS_DIR");
            std::process::exit(2);
        }
    };
    let (review, annotations) = (corpus.join("review"), corpus.join("annotations"));
    for d in [&review, &annotations] {
        std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
    }
    let mut dirs: Vec<_> = std::fs::read_dir(fixtures)
        .unwrap_or_else(|e| panic!("{}: {e}", fixtures.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("pod.yaml").exists())
        .collect();
    dirs.sort();
    let (mut reviews, mut values) = (0, 0);
    for dir in &dirs {
        let text = std::fs::read_to_string(dir.join("pod.yaml")).unwrap_or_default();
        let Ok(pod) = serde_saphyr::from_str::<Value>(&text) else {
            continue;
        };
        let ns = pod["metadata"]["namespace"]
            .as_str()
            .unwrap_or("shop")
            .to_owned();
        let body = json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "seed", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "operation": "CREATE", "namespace": ns, "object": pod}
        });
        let name = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        std::fs::write(
            review.join(&name),
            serde_json::to_vec(&body).unwrap_or_default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        reviews += 1;
        for (k, v) in pod["metadata"]["annotations"]
            .as_object()
            .into_iter()
            .flatten()
        {
            if let (Some(i), Some(v)) = (override_keys().position(|x| x == k), v.as_str()) {
                let mut bytes = vec![i as u8];
                bytes.extend_from_slice(v.as_bytes());
                std::fs::write(annotations.join(format!("{name}-{i}")), bytes)
                    .unwrap_or_else(|e| panic!("{e}"));
                values += 1;
            }
        }
    }
    println!(
        "seeded {reviews} reviews into {} and {values} annotation values into {}",
        review.display(),
        annotations.display()
    );
}
