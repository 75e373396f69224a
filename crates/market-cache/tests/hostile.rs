//! Property tests: every parser of outside input answers with a value or a named error,
//! never a panic, whatever it is given.
#![allow(clippy::unwrap_used)]

use std::sync::OnceLock;

use market_cache::DbSettings;
use market_cache::{
    parse_klines, parse_time, Decimal, ImportOptions, OnInvalid, Service, Symbol, Timeframe,
};
use proptest::collection::vec;
use proptest::prelude::*;

/// Strings that look like candle fields, or nearly, or not at all.
fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| v.to_string()),
        Just(String::new()),
        Just("1e308".to_owned()),
        Just("-0".to_owned()),
        Just("NaN".to_owned()),
        Just("0.000000000000000000001".to_owned()),
        Just("99999999999999999999999999999".to_owned()),
        Just("\"quoted\"".to_owned()),
        "[0-9]{1,20}\\.[0-9]{0,20}",
        "\\PC{0,12}",
    ]
}

/// A file in one of the importer's formats, built from `fields`, or junk pretending to be.
fn file(kind: usize, rows: &[Vec<String>], junk: &[u8]) -> (String, Vec<u8>) {
    let csv = |rows: &[Vec<String>]| {
        rows.iter()
            .map(|r| r.join(","))
            .collect::<Vec<_>>()
            .join("\n")
    };
    match kind {
        0 => ("BTCUSDT-1m-2024-01.csv".into(), csv(rows).into_bytes()),
        1 => (
            "BTCUSDT-1m.csv".into(),
            format!("timestamp,open,high,low,close,volume\n{}", csv(rows)).into_bytes(),
        ),
        2 => {
            let inner: Vec<String> = rows.iter().map(|r| format!("[{}]", r.join(","))).collect();
            (
                "BTC_USDT-1m.json".into(),
                format!("[{}]", inner.join(",")).into_bytes(),
            )
        }
        3 => {
            let mut b = b"[[1704067200000,".to_vec();
            b.extend_from_slice(junk);
            ("BTC_USDT-1h.json".into(), b)
        }
        4 => {
            let mut b = b"PAR1".to_vec();
            b.extend_from_slice(junk);
            b.extend_from_slice(b"PAR1");
            ("BTCUSDT-1m.parquet".into(), b)
        }
        5 => {
            let mut b = b"PK\x03\x04".to_vec();
            b.extend_from_slice(junk);
            ("BTCUSDT-1m-2024-01.zip".into(), b)
        }
        7 => {
            // Valid Binance rows, one field of each replaced by something else.
            let lines: Vec<String> = rows
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let t = 1_704_067_200_000i64 + i as i64 * 60_000;
                    let mut f: Vec<String> = format!(
                        "{t},42000.10,42010.00,41990.50,42005.00,12.5,{},525000.0,100,6.1,256000.0,0",
                        t + 59_999
                    )
                    .split(',')
                    .map(str::to_owned)
                    .collect();
                    if let Some(v) = r.first() {
                        let at = r.len() % f.len();
                        f[at] = v.clone();
                    }
                    f.join(",")
                })
                .collect();
            (
                "BTCUSDT-1m-2024-02.csv".into(),
                lines.join("\n").into_bytes(),
            )
        }
        _ => ("BTCUSDT-1m-junk.csv".into(), junk.to_vec()),
    }
}

struct Env {
    rt: tokio::runtime::Runtime,
    service: Service,
    dir: tempfile::TempDir,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let service = rt.block_on(async {
            Service::builder(DbSettings::new(dir.path().join("p.db")))
                .open()
                .await
                .unwrap()
        });
        Env { rt, service, dir }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    #[test]
    fn importing_any_file_is_a_report_or_a_named_error(
        kind in 0usize..9,
        rows in vec(vec(field(), 0..14), 1..6),
        junk in vec(any::<u8>(), 0..200),
        skip in any::<bool>(),
    ) {
        let e = env();
        let (name, bytes) = file(kind, &rows, &junk);
        let path = e.dir.path().join(&name);
        std::fs::write(&path, &bytes).unwrap();
        let opts = ImportOptions {
            on_invalid: if skip { OnInvalid::Skip } else { OnInvalid::Fail },
            ..ImportOptions::default()
        };
        match e.rt.block_on(e.service.import_path(&path, &opts, &|_| {})) {
            // A report accounts for every row it read.
            Ok(reports) => {
                for r in reports {
                    prop_assert!(r.source.contains(&name), "{}", r.source);
                    prop_assert!(
                        r.inserted + r.updated + r.duplicates + r.rejected <= r.read,
                        "{r:?}"
                    );
                    prop_assert!(r.rejects.len() as u64 <= r.rejected);
                    if !skip {
                        prop_assert_eq!(r.rejected, 0);
                    }
                }
            }
            // An error names the file it is about.
            Err(err) => prop_assert!(err.to_string().contains(&name), "{err}"),
        }
    }

    #[test]
    fn scalar_parsers_never_panic(s in "\\PC{0,40}", t in any::<i64>()) {
        let _ = parse_time(&s);
        let _ = parse_time(&t.to_string());
        let _ = s.parse::<Timeframe>();
        let _ = s.parse::<Symbol>();
        let _ = s.parse::<Decimal>();
        let _ = t.to_string().parse::<Decimal>();
    }

    #[test]
    fn upstream_kline_bodies_never_panic(
        rows in vec(vec(field(), 0..14), 0..5),
        junk in vec(any::<u8>(), 0..100),
        as_strings in any::<bool>(),
    ) {
        let inner: Vec<String> = rows
            .iter()
            .map(|r| {
                let cells: Vec<String> = if as_strings {
                    r.iter().map(|c| format!("{c:?}")).collect()
                } else {
                    r.clone()
                };
                format!("[{}]", cells.join(","))
            })
            .collect();
        let body = format!("[{}]", inner.join(","));
        for tf in [Timeframe::M1, Timeframe::H1] {
            let _ = parse_klines(body.as_bytes(), tf);
            let _ = parse_klines(&junk, tf);
        }
    }
}
