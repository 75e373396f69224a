//! The store and the importer on real SQLite files and the real fixture files.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};

use market_cache::DbSettings;
use market_cache::{
    CandleStore, Decimal, Error, ExportFormat, ExportReport, ExportTo, ImportOptions, ImportReport,
    OnInvalid, Service, SqliteStore, Symbol, Timeframe,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/market")
        .join(name)
}

/// The store under test, and the service that imports and exports through it (two
/// handles on one SQLite file, as the binary and an inspecting tool would be).
struct Env {
    store: SqliteStore,
    service: Service,
}

impl std::ops::Deref for Env {
    type Target = SqliteStore;
    fn deref(&self) -> &SqliteStore {
        &self.store
    }
}

async fn store(dir: &tempfile::TempDir) -> Env {
    open(DbSettings::new(dir.path().join("t.db"))).await
}

async fn open(cfg: DbSettings) -> Env {
    Env {
        store: SqliteStore::open(cfg.clone()).await.unwrap(),
        service: Service::builder(cfg).open().await.unwrap(),
    }
}

async fn import(
    env: &Env,
    path: &Path,
    opts: &ImportOptions,
) -> market_cache::Result<Vec<ImportReport>> {
    env.service.import_path(path, opts, &|_| {}).await
}

async fn export(
    env: &Env,
    symbol: &Symbol,
    tf: Timeframe,
    range: (i64, i64),
    format: ExportFormat,
    out: &Path,
) -> market_cache::Result<ExportReport> {
    let to = ExportTo::Path(out.to_path_buf());
    env.service
        .export(symbol, tf, range, format, to, &|_| {})
        .await
}

fn sym(s: &str) -> Symbol {
    s.parse().unwrap()
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A checksum over every stored candle, to prove a failed import changed nothing.
async fn fingerprint(store: &SqliteStore) -> (i64, i64, i64) {
    store
        .db()
        .run(|s| {
            s.time("fingerprint", 1, |c| {
                c.query_row(
                    "SELECT count(*), coalesce(sum(open_time % 1000003), 0), coalesce(sum(volume % 1000003), 0) FROM candles",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
            })
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binance_files_read_back_exactly_and_reimport_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir).await;
    for (file, tf, rows) in [
        ("XRPETH-1m.csv", Timeframe::M1, 2469),
        ("XRPETH-5m.csv", Timeframe::M5, 706),
    ] {
        let r = &import(&s, &fixture(file), &ImportOptions::default())
            .await
            .unwrap()[0];
        assert_eq!(
            (r.format, r.read, r.inserted, r.rejected),
            ("binance-csv", rows, rows, 0)
        );
        let stored = s.read(&sym("XRPETH"), tf, 0, i64::MAX).await.unwrap();
        let text = std::fs::read_to_string(fixture(file)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(stored.len(), lines.len());
        for (c, line) in stored.iter().zip(&lines) {
            let f: Vec<&str> = line.split(',').collect();
            let got = [
                c.open_time.to_string(),
                c.open.to_string(),
                c.high.to_string(),
                c.low.to_string(),
                c.close.to_string(),
                c.volume.to_string(),
            ];
            assert_eq!(got.as_slice(), &f[..6], "{line}");
        }
        let again = &import(&s, &fixture(file), &ImportOptions::default())
            .await
            .unwrap()[0];
        assert_eq!(
            (again.inserted, again.updated, again.duplicates),
            (0, 0, rows)
        );
    }
    let markets = s.markets().await.unwrap();
    assert_eq!(markets.len(), 2);
    assert_eq!(markets[0].count, 2469);
    assert_eq!(markets[0].first_time, Some(1_570_752_000_000));
    assert_eq!(markets[0].price_precision, 8);
    assert_eq!(
        (markets[0].base.as_deref(), markets[0].quote.as_deref()),
        (Some("XRP"), Some("ETH"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freqtrade_json_reads_back_to_the_same_floats() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir).await;
    let r = &import(
        &s,
        &fixture("XRP_USDT_USDT-1h-futures.json"),
        &ImportOptions::default(),
    )
    .await
    .unwrap()[0];
    assert_eq!(
        (
            r.format,
            r.symbol.as_str(),
            r.timeframe.as_str(),
            r.inserted
        ),
        ("freqtrade-json", "XRPUSDT", "1h", 100)
    );
    let rows: Vec<Vec<f64>> = serde_json::from_str(
        &std::fs::read_to_string(fixture("XRP_USDT_USDT-1h-futures.json")).unwrap(),
    )
    .unwrap();
    let batch = s
        // freqtrade's `-futures` name makes them futures candles.
        .read_batch(
            &sym("XRPUSDT").with_kind(market_cache::Kind::Futures),
            Timeframe::H1,
            0,
            i64::MAX,
        )
        .await
        .unwrap();
    assert_eq!(batch.num_rows(), 100);
    let col = |i: usize| {
        batch
            .column(i)
            .as_any()
            .downcast_ref::<arrow_array::Float64Array>()
            .unwrap()
            .clone()
    };
    let times = batch
        .column(0)
        .as_any()
        .downcast_ref::<arrow_array::Int64Array>()
        .unwrap();
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(times.value(i), row[0] as i64);
        for (k, want) in row.iter().enumerate().skip(1).take(5) {
            let got = col(k).value(i);
            assert!(
                (got - want).abs() <= want.abs() * 1e-12,
                "row {i} col {k}: {got} vs {want}"
            );
        }
    }
    assert_eq!(
        batch.column(7).null_count(),
        100,
        "freqtrade files carry no trade counts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_row_fails_the_whole_file_with_its_line_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir).await;
    import(&s, &fixture("XRPETH-5m.csv"), &ImportOptions::default())
        .await
        .unwrap();
    let good = "1570752000000,0.00141342,0.00141557,0.00141266,0.00141418,1482.00000000,1570752059999,0,0,0,0,0";
    let cases = [
        (
            "1570752060000,0.00141597,0.00141500,0.00141597,0.00141658,522,0,0,0,0,0,0",
            "above high",
        ),
        (
            "1570752030000,0.1,0.2,0.1,0.1,5,0,0,0,0,0,0",
            "not on the 1m grid",
        ),
        (
            "1570752060000,abc,0.2,0.1,0.1,5,0,0,0,0,0,0",
            "open `abc` is not a number",
        ),
        ("1570752060000,0.1,0.2", "3 fields"),
        (
            "1570752060000,0.1,0.2,0.1,0.1,-5,0,0,0,0,0,0",
            "negative volume",
        ),
        (
            "-1570752060000,0.1,0.2,0.1,0.1,5,0,0,0,0,0,0",
            "invalid time",
        ),
    ];
    for (bad, reason) in cases {
        let before = fingerprint(&s).await;
        // Many good rows first, in several batches, so a one-pass import would have written.
        let mut text = String::new();
        for i in 0..30 {
            text.push_str(&good.replacen(
                "1570752000000",
                &(1_570_752_000_000i64 + i * 60_000).to_string(),
                1,
            ));
            text.push('\n');
        }
        text.push_str(bad);
        text.push('\n');
        let p = write(&dir, "XRPETH-1m-bad.csv", &text);
        let opts = ImportOptions {
            batch_rows: 7,
            ..ImportOptions::default()
        };
        let err = import(&s, &p, &opts).await.unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Rejected { count: 1, .. }), "{msg}");
        assert!(
            msg.contains("line 31") && msg.contains(reason),
            "{reason}: {msg}"
        );
        assert_eq!(
            fingerprint(&s).await,
            before,
            "{reason}: the database changed"
        );

        let skip = ImportOptions {
            on_invalid: OnInvalid::Skip,
            ..opts
        };
        let r = &import(&s, &p, &skip).await.unwrap()[0];
        assert_eq!((r.read, r.rejected), (31, 1), "{reason}");
        assert_eq!(r.rejects[0].location, "line 31");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_that_are_not_candles_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir).await;
    let opts = ImportOptions {
        symbol: Some(sym("BTCUSDT")),
        timeframe: Some(Timeframe::M1),
        ..ImportOptions::default()
    };
    let check = |name: &str, body: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p
    };
    let err = import(&s, &check("empty.csv", b""), &opts)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("empty"), "{err}");
    let err = import(
        &s,
        &check("h.csv", b"when,open,high,low,close,volume\n1,2,3,4,5,6\n"),
        &opts,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("header") && err.contains("no `time` column"),
        "{err}"
    );
    let err = import(&s, &check("j.json", b"[[1,2,3],"), &opts)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a freqtrade JSON array"), "{err}");
    let err = import(&s, &check("b.parquet", b"PAR1garbage"), &opts)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("parquet"), "{err}");
    let err = import(&s, &dir.path().join("missing.csv"), &opts)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.csv"), "{err}");
    let err = import(
        &s,
        &check("noname.csv", b"1570752000000,1,1,1,1,1\n"),
        &ImportOptions::default(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("timeframe is not given"), "{err}");
    let err = import(
        &s,
        &check("bin.csv", &[0xff, 0xfe, 0x00, 0x81, b'\n', 0x90]),
        &opts,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("UTF-8") || err.contains("not a text"), "{err}");
    assert_eq!(fingerprint(&s).await.0, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_csv_microseconds_zip_and_parquet_all_import() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir).await;
    // A generic CSV with ISO dates, as pandas writes it.
    let p = write(&dir, "ETHUSDT-1d.csv", "date,open,high,low,close,volume\n2024-01-01 00:00:00,2281.87,2352.37,2265.24,2352.04,216702.6842\n2024-01-02T00:00:00Z,2352.04,2431.19,2341.0,2355.34,458041.0918\n");
    assert_eq!(
        import(&s, &p, &ImportOptions::default()).await.unwrap()[0].inserted,
        2
    );
    // A futures file with a header and a 2025 spot file with microseconds, same candles.
    let futures = write(&dir, "BTCUSDT-1m-2025-01.csv", "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\n1735689600000,93576.00,93610.93,93537.50,93610.93,8.21827,1735689659999,768978.03,1744,4.96,464258.6,0\n");
    let r = &import(&s, &futures, &ImportOptions::default())
        .await
        .unwrap()[0];
    assert_eq!((r.format, r.inserted), ("csv", 1));
    let micros = write(&dir, "BTCUSDT-1m-2025-01b.csv", "1735689600000000,93576.00,93610.93,93537.50,93610.93,8.21827,1735689659999999,768978.03,1744,4.96,464258.6,0\n");
    let r = &import(&s, &micros, &ImportOptions::default())
        .await
        .unwrap()[0];
    assert_eq!(
        (r.inserted, r.duplicates),
        (0, 1),
        "µs times land on the same candle"
    );
    let c = &s
        .read(&sym("BTCUSDT"), Timeframe::M1, 0, i64::MAX)
        .await
        .unwrap()[0];
    assert_eq!(
        (c.trades, c.quote_volume.unwrap().to_string()),
        (Some(1744), "768978.03".to_owned())
    );

    // A zip as Binance publishes them.
    let zip_path = dir.path().join("XRPETH-5m-2019-10.zip");
    {
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
        zip.start_file(
            "XRPETH-5m-2019-10.csv",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        zip.write_all(&std::fs::read(fixture("XRPETH-5m.csv")).unwrap())
            .unwrap();
        zip.finish().unwrap();
    }
    let r = &import(&s, &zip_path, &ImportOptions::default())
        .await
        .unwrap()[0];
    assert!(r.source.ends_with("!XRPETH-5m-2019-10.csv"), "{}", r.source);
    assert_eq!(r.inserted, 706);

    // Parquet, exported by us, into a fresh database: the same values come back.
    let pq = dir.path().join("x.parquet");
    let sym5 = sym("XRPETH");
    let rep = export(
        &s,
        &sym5,
        Timeframe::M5,
        (0, i64::MAX),
        ExportFormat::Parquet,
        &pq,
    )
    .await
    .unwrap();
    assert_eq!(rep.rows, 706);
    let dir2 = tempfile::tempdir().unwrap();
    let s2 = store(&dir2).await;
    let opts = ImportOptions {
        symbol: Some(sym5.clone()),
        timeframe: Some(Timeframe::M5),
        ..ImportOptions::default()
    };
    let r = &import(&s2, &pq, &opts).await.unwrap()[0];
    assert_eq!((r.format, r.inserted), ("parquet", 706));
    let a = s.read(&sym5, Timeframe::M5, 0, i64::MAX).await.unwrap();
    let b = s2.read(&sym5, Timeframe::M5, 0, i64::MAX).await.unwrap();
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            (x.open_time, x.open, x.high, x.low, x.close, x.volume),
            (y.open_time, y.open, y.high, y.low, y.close, y.volume)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_decimal_places_later_rescale_what_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir).await;
    let a = write(
        &dir,
        "ABCUSDT-1h.csv",
        "time,open,high,low,close,volume\n0,1.5,2,1,1.5,10\n",
    );
    let b = write(
        &dir,
        "ABCUSDT-1h-b.csv",
        "time,open,high,low,close,volume\n3600000,1.2345,2,1,1.5,10.125\n",
    );
    import(&s, &a, &ImportOptions::default()).await.unwrap();
    import(&s, &b, &ImportOptions::default()).await.unwrap();
    let c = s
        .read(&sym("ABCUSDT"), Timeframe::H1, 0, i64::MAX)
        .await
        .unwrap();
    assert_eq!(c[0].open, "1.5".parse::<Decimal>().unwrap());
    assert_eq!(c[0].open.to_string(), "1.5000");
    assert_eq!(c[1].open.to_string(), "1.2345");
    assert_eq!(c[1].volume.to_string(), "10.125");
    assert_eq!(c[0].volume.to_string(), "10.000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_write_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir).await;
    import(&s, &fixture("XRPETH-1m.csv"), &ImportOptions::default())
        .await
        .unwrap();
    let x = sym("XRPETH");
    let csv = dir.path().join("o/x.csv");
    let r = export(
        &s,
        &x,
        Timeframe::M1,
        (1_570_752_000_000, 1_570_752_300_000),
        ExportFormat::Csv,
        &csv,
    )
    .await
    .unwrap();
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(r.rows as usize, text.lines().count() - 1);
    assert_eq!(text.lines().next(), Some("time,open,high,low,close,volume"));
    assert_eq!(
        text.lines().nth(1),
        Some("1570752000000,0.00141342,0.00141557,0.00141266,0.00141418,1482.00000000")
    );
    let bin = dir.path().join("b.csv");
    export(
        &s,
        &x,
        Timeframe::M1,
        (0, i64::MAX),
        ExportFormat::Binance,
        &bin,
    )
    .await
    .unwrap();
    assert_eq!(
        std::fs::read(&bin).unwrap(),
        std::fs::read(fixture("XRPETH-1m.csv")).unwrap()
    );
    let ds = dir.path().join("ds");
    let r = export(
        &s,
        &x,
        Timeframe::M1,
        (0, i64::MAX),
        ExportFormat::Dataset,
        &ds,
    )
    .await
    .unwrap();
    assert_eq!(
        r.files,
        vec![ds.join("symbol=XRPETH/timeframe=1m/year=2019/part-0.parquet")]
    );
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(&r.files[0]).unwrap(),
    )
    .unwrap();
    let schema = reader.schema().clone();
    assert_eq!(
        schema.field(0).data_type(),
        &arrow_schema::DataType::Timestamp(arrow_schema::TimeUnit::Millisecond, Some("UTC".into()))
    );
    assert_eq!(schema.field(7).data_type(), &arrow_schema::DataType::UInt64);
    let rows: usize = reader.build().unwrap().map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 2469);
    let err = export(
        &s,
        &sym("NOPE"),
        Timeframe::M1,
        (0, i64::MAX),
        ExportFormat::Csv,
        &csv,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::UnknownSymbol(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_zero_threshold_the_slow_log_sees_the_store_queries() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = DbSettings::new(dir.path().join("t.db"));
    cfg.slow_query_ms = 0;
    let s = open(cfg).await;
    import(&s, &fixture("XRPETH-5m.csv"), &ImportOptions::default())
        .await
        .unwrap();
    s.read_batch(&sym("XRPETH"), Timeframe::M5, 0, i64::MAX)
        .await
        .unwrap();
    // The import ran on the service's handle, the read on the store's: each has its log.
    let imported = s.service.database_stats();
    let slow: Vec<String> = (imported.slow.into_iter())
        .chain(s.db().log().slow())
        .map(|q| q.pattern)
        .collect();
    assert!(
        slow.iter().any(|p| p.starts_with("INSERT INTO candles")),
        "{slow:?}"
    );
    assert!(
        slow.iter()
            .any(|p| p.starts_with("SELECT open_time, open, high")),
        "{slow:?}"
    );
    let upsert = imported
        .patterns
        .into_iter()
        .find(|p| p.pattern.starts_with("INSERT INTO candles"))
        .unwrap();
    assert_eq!(
        upsert.count, 706,
        "every candle is counted as one execution"
    );
}

/// The 5m fixture is the 5-minute aggregation of the same trades as the 1m fixture, so
/// resampling the stored 1m candles must give it back exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resampling_1m_reproduces_the_exchange_5m_candles() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir).await;
    import(&s, &fixture("XRPETH-1m.csv"), &ImportOptions::default())
        .await
        .unwrap();
    import(&s, &fixture("XRPETH-5m.csv"), &ImportOptions::default())
        .await
        .unwrap();
    let x = sym("XRPETH");
    let one = s.read(&x, Timeframe::M1, 0, i64::MAX).await.unwrap();
    let five = s.read(&x, Timeframe::M5, 0, i64::MAX).await.unwrap();
    let mine = market_cache::resample(&one, Timeframe::M5);
    assert_eq!(mine.len(), five.len());
    for (a, b) in mine.iter().zip(&five) {
        assert_eq!(
            (a.open_time, a.open, a.high, a.low, a.close, a.volume),
            (b.open_time, b.open, b.high, b.low, b.close, b.volume),
            "at {}",
            a.open_time
        );
    }
    // The 1m file has 3,560 slots, 2,469 candles, 676 gaps (shared/data/README).
    let (first, last) = (one[0].open_time, one.last().unwrap().open_time);
    let gaps = market_cache::gaps(
        one.iter().map(|c| c.open_time),
        Timeframe::M1,
        first,
        last + 60_000,
    );
    assert_eq!(gaps.len(), 676);
    let missing: i64 = gaps.iter().map(|(a, b)| (b - a) / 60_000).sum();
    assert_eq!(missing, 3_560 - 2_469);
    let filled = market_cache::fill_previous(&one, Timeframe::M1, last + 60_000);
    assert_eq!(filled.len(), 3_560);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_in_memory_import_like_the_file_they_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir).await;
    let csv = std::fs::read(fixture("XRPETH-5m.csv")).unwrap();
    // A zip in memory, as a download would hold it.
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file(
        "XRPETH-5m-2019-10.csv",
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    zip.write_all(&csv).unwrap();
    let zipped = zip.finish().unwrap().into_inner();
    let opts = ImportOptions::default();
    let r = &s
        .service
        .import_bytes("XRPETH-5m-2019-10.zip", zipped, &opts, &|_| {})
        .await
        .unwrap()[0];
    assert_eq!((r.symbol.as_str(), r.timeframe.as_str()), ("XRPETH", "5m"));
    assert!(r.source.ends_with("!XRPETH-5m-2019-10.csv"), "{}", r.source);
    assert_eq!(r.inserted, 706);
    // The plain file's bytes: the same candles, already stored.
    let r = &s
        .service
        .import_bytes("XRPETH-5m.csv", csv, &opts, &|_| {})
        .await
        .unwrap()[0];
    assert_eq!((r.inserted, r.duplicates), (0, 706));
    // Garbage is a named error.
    let err = s
        .service
        .import_bytes("noise.csv", b"\x00\x01zz".to_vec(), &opts, &|_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("noise.csv"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgetting_a_range_drops_its_candles_and_its_coverage_only() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir).await;
    import(&s, &fixture("XRPETH-5m.csv"), &ImportOptions::default())
        .await
        .unwrap();
    let x = sym("XRPETH");
    let all = s.read(&x, Timeframe::M5, 0, i64::MAX).await.unwrap();
    let (first, last) = (all[0].open_time, all[all.len() - 1].open_time);
    let end = last + 300_000;
    let meta = market_cache::MarketMeta::new(x.clone());
    s.write_covered(&meta, Timeframe::M5, Vec::new(), (first, end))
        .await
        .unwrap();
    let used = s.used_bytes().await.unwrap();
    assert!(used > 0);
    // A hole in the middle: its candles and only its coverage go.
    let (a, b) = (all[100].open_time, all[300].open_time);
    assert_eq!(s.forget(&x, Timeframe::M5, a, b).await.unwrap(), 200);
    assert_eq!(
        s.missing(&x, Timeframe::M5, first, end).await.unwrap(),
        [(a, b)]
    );
    let kept = s.read(&x, Timeframe::M5, 0, i64::MAX).await.unwrap();
    assert_eq!(kept.len(), all.len() - 200);
    assert_eq!(kept[..100], all[..100]);
    assert_eq!(kept[100..], all[300..]);
    let m = &s.markets().await.unwrap()[0];
    assert_eq!(
        (m.count, m.first_time, m.last_time),
        (kept.len() as u64, Some(first), Some(last))
    );
    // The first part: the series now starts later.
    s.forget(&x, Timeframe::M5, first, a).await.unwrap();
    let m = &s.markets().await.unwrap()[0];
    assert_eq!((m.count, m.first_time), (all.len() as u64 - 300, Some(b)));
    assert_eq!(
        s.missing(&x, Timeframe::M5, first, end).await.unwrap(),
        [(first, b)]
    );
    // All of it: the series stays listed, empty, and its place is free again.
    s.forget(&x, Timeframe::M5, 0, i64::MAX).await.unwrap();
    let m = &s.markets().await.unwrap()[0];
    assert_eq!((m.count, m.first_time, m.last_time), (0, None, None));
    assert!(s.used_bytes().await.unwrap() < used);
    assert_eq!(
        s.forget(&sym("NOPE"), Timeframe::M5, 0, 1).await.unwrap(),
        0
    );
}

/// A range large enough to be read as two halves on two connections, with holes and
/// bounds off the grid, reads back as the same candles the row reader returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_holed_ranges_read_into_arrow_as_the_rows_are() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir).await;
    let x = sym("BTCUSDT");
    let m = 60_000;
    let candles: Vec<market_cache::Candle> = (0..90_000i64)
        // Every 7th minute missing, and a long hole in the middle.
        .filter(|i| i % 7 != 3 && !(40_000..45_000).contains(i))
        .map(|i| {
            let d = |v: i64| Decimal::new(i128::from(v), 2);
            market_cache::Candle {
                open_time: 1_600_000_000_000 + i * m,
                open: d(1000 + i),
                high: d(1010 + i),
                low: d(990 + i),
                close: d(1001 + i),
                volume: d(i % 97),
                quote_volume: Some(d(i)),
                trades: Some(i as u64),
                taker_base: None,
                taker_quote: Some(d(i % 13)),
                volume_ccy: (i % 3 == 0).then(|| d(i % 11)),
            }
        })
        .collect();
    let meta = market_cache::MarketMeta::new(x.clone());
    s.write(&meta, Timeframe::M1, candles.clone())
        .await
        .unwrap();
    let t0 = 1_600_000_000_000;
    for (start, end) in [
        (0, i64::MAX),
        (t0 + 3 * m + 1, t0 + 88_000 * m - 1),
        (t0 + 19_000 * m + 30_000, t0 + 89_999 * m),
    ] {
        let rows = s.read(&x, Timeframe::M1, start, end).await.unwrap();
        let batch = s.read_batch(&x, Timeframe::M1, start, end).await.unwrap();
        // Spans of more than 65,536 minutes: read in two halves.
        assert!(rows.len() > 55_000, "{}", rows.len());
        assert_eq!(batch.num_rows(), rows.len());
        let times = batch
            .column(0)
            .as_any()
            .downcast_ref::<arrow_array::Int64Array>()
            .unwrap();
        let close = batch
            .column(4)
            .as_any()
            .downcast_ref::<arrow_array::Float64Array>()
            .unwrap();
        let taker_base = batch.column(8);
        for (i, c) in rows.iter().enumerate() {
            assert_eq!(times.value(i), c.open_time);
            assert_eq!(close.value(i), c.close.to_f64());
        }
        assert_eq!(taker_base.null_count(), rows.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binance_and_a_bybit_series_of_one_name_never_mix() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir).await;
    import(&s, &fixture("XRPETH-5m.csv"), &ImportOptions::default())
        .await
        .unwrap();
    let binance = sym("XRPETH");
    let bybit = binance.clone().with_exchange(market_cache::Exchange::Bybit);
    let all = s.read(&binance, Timeframe::M5, 0, i64::MAX).await.unwrap();
    assert!(matches!(
        s.read(&bybit, Timeframe::M5, 0, i64::MAX).await,
        Err(market_cache::Error::UnknownSymbol(_))
    ));
    // The same times on Bybit at other prices: a second series, covered on its own.
    let mut other = all[..10].to_vec();
    for c in &mut other {
        c.close = c.open;
        c.high = c.high.max(c.open);
        c.low = c.low.min(c.open);
    }
    let (a, b) = (all[0].open_time, all[10].open_time);
    let meta = market_cache::MarketMeta::new(bybit.clone());
    s.write_covered(&meta, Timeframe::M5, other.clone(), (a, b))
        .await
        .unwrap();
    assert_eq!(
        s.read(&bybit, Timeframe::M5, 0, i64::MAX).await.unwrap(),
        other
    );
    assert_eq!(
        s.read(&binance, Timeframe::M5, 0, i64::MAX).await.unwrap(),
        all
    );
    assert!(s
        .missing(&bybit, Timeframe::M5, a, b)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.missing(&binance, Timeframe::M5, a, b).await.unwrap(),
        [(a, b)]
    );
    let markets = s.markets().await.unwrap();
    let exchanges: Vec<_> = markets.iter().map(|m| (m.exchange, m.count)).collect();
    assert_eq!(
        exchanges,
        [
            (market_cache::Exchange::Binance, all.len() as u64),
            (market_cache::Exchange::Bybit, 10)
        ]
    );
    assert_eq!(markets[1].series(), Some(bybit));
}
