use std::process::Command;

use serde_json::Value;

use crate::binary;

#[test]
fn demo_caches_the_bundled_candles_and_reports_real_figures() {
    let out = Command::new(binary())
        .args(["demo", "--json", "--reads", "1000", "--chunk", "500"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats: Value = serde_json::from_slice(&out.stdout).unwrap();
    let history = &stats["demo"]["namespaces"]["historical_data"];
    // 2,469 1m candles in 5 chunks of 500, 706 5m candles in 2.
    assert_eq!(history["inserts"], 7);
    assert_eq!(history["misses"], 7);
    assert!(history["hits"].as_u64().unwrap() >= 1000);
    let squeezed = &stats["squeezed"]["total"];
    assert!(squeezed["entries_warm"].as_u64().unwrap() > 0, "{squeezed}");
    assert!(
        squeezed["compression_ratio"].as_f64().unwrap() > 2.0,
        "{squeezed}"
    );
    assert!(squeezed["used_bytes"].as_u64().unwrap() <= squeezed["limit_bytes"].as_u64().unwrap());
    assert!(
        stats["demo"]["total"]["evictions"].as_u64().unwrap() > 0,
        "the reclaim evicted"
    );
}

#[test]
fn bad_arguments_fail_with_a_message_naming_them() {
    let out = Command::new(binary())
        .args(["demo", "--chunk", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--chunk"), "{err}");

    let out = Command::new(binary()).arg("frobnicate").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("frobnicate"));
}
