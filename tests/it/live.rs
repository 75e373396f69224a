//! The live edge against the fake exchange with its clock moving: 1s candles form and
//! close while clients poll, over REST alone and from the upstream's stream, through
//! drops, stalls, refusals and malformed frames. Every closed candle served past the
//! freshness bound must be the exchange's final one; the forming candle must be recent.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fake_exchange::{self as fake, FakeExchange, WsFault, SYMBOL};
use crate::http::{get, spawn, Server};
use crate::run;
use crate::upstream::{expected_csv, exported};

const SEC: i64 = 1000;
const TARGET: &str = "/api/v3/klines?symbol=BTCUSDT&interval=1s&limit=5";

/// One poll: when it was asked and answered, and the rows.
struct Seen {
    asked: i64,
    answered: i64,
    rows: Vec<Value>,
}

fn poll(srv: &Server, every: Duration, for_: Duration) -> Vec<Seen> {
    let until = Instant::now() + for_;
    let mut out = Vec::new();
    while Instant::now() < until {
        let asked = fake::now_ms();
        let r = get(srv.addr, TARGET);
        let answered = fake::now_ms();
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        out.push(Seen {
            asked,
            answered,
            rows: serde_json::from_slice(&r.body).unwrap(),
        });
        std::thread::sleep(every);
    }
    out
}

/// The fake's price units (8 decimals) as an integer.
fn units(v: &Value) -> i64 {
    v.as_str().unwrap().replace('.', "").parse().unwrap()
}

/// What a run of polls showed.
#[derive(Debug)]
struct Freshness {
    /// Per closed candle: ms from its close until it was first served final.
    close_visible_ms: Vec<i64>,
    /// Per poll that showed a forming candle: how old its values were when answered.
    forming_age_ms: Vec<i64>,
    /// Closed candles served with other values than the exchange's final ones more than
    /// `bound_ms` after their close: (poll time, row).
    wrong_after_bound: Vec<(i64, String)>,
}

fn judge(seen: &[Seen], bound_ms: i64) -> Freshness {
    let mut first_final: std::collections::BTreeMap<i64, i64> = Default::default();
    let mut f = Freshness {
        close_visible_ms: Vec::new(),
        forming_age_ms: Vec::new(),
        wrong_after_bound: Vec::new(),
    };
    for s in seen {
        assert_eq!(s.rows.len(), 5, "exactly `limit` rows, as Binance answers");
        for r in &s.rows {
            let t = r[0].as_i64().unwrap();
            let close = t + SEC;
            if close <= s.asked {
                let served = r.to_string();
                let is_final = served == fake::row(SEC, t, close + 10 * SEC);
                if is_final {
                    first_final.entry(t).or_insert(s.answered);
                } else if s.asked - close > bound_ms {
                    f.wrong_after_bound.push((s.asked, r.to_string()));
                }
            } else {
                // The fake's forming close grows 1000 units a ms since the open.
                let as_of = t + (units(&r[4]) - units(&r[1])) / 1000;
                f.forming_age_ms.push(s.asked - as_of);
            }
        }
    }
    // Candles seen from their close on (not those already old at the first poll).
    let start = seen.first().map_or(0, |s| s.asked);
    for (t, at) in first_final {
        if t + SEC > start {
            f.close_visible_ms.push(at - (t + SEC));
        }
    }
    f
}

impl Freshness {
    /// Prints the figures (run with --nocapture to see them; docs/BENCHMARKS.md quotes them).
    fn report(&self, what: &str) -> &Self {
        let row = |v: &[i64]| {
            format!(
                "p50 {} ms, p99 {} ms, max {} ms (n={})",
                pct(v, 0.5),
                pct(v, 0.99),
                pct(v, 1.0),
                v.len()
            )
        };
        eprintln!(
            "{what}: close visible {}; forming age {}",
            row(&self.close_visible_ms),
            row(&self.forming_age_ms)
        );
        assert!(
            !self.close_visible_ms.is_empty() && !self.forming_age_ms.is_empty(),
            "{what}: nothing measured"
        );
        self
    }
}

pub(crate) fn pct(v: &[i64], p: f64) -> i64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    if v.is_empty() {
        return 0;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

pub(crate) fn stats(srv: &Server) -> Value {
    get(srv.addr, "/api/performance/stats").json()["data"]["upstream"].clone()
}

/// Waits until the stream of the series is trusted for the edge.
fn wait_live(srv: &Server) {
    let until = Instant::now() + Duration::from_secs(20);
    while stats(srv)["streams"]["live_streams"] != 1 {
        assert!(
            Instant::now() < until,
            "the stream never became live: {}",
            stats(srv)
        );
        let _ = get(srv.addr, TARGET);
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The stored 1s candles in `[start, end)` equal the exchange's, none missing.
pub(crate) fn assert_stored_equal(db: &std::path::Path, start: i64, end: i64) {
    assert_eq!(
        exported(db, "1s", start, end),
        expected_csv(SEC, start, end)
    );
}

const STREAM_CONFIG: &str = "[upstream.stream]\nwatchdog_ms = 2000\nstale_ms = 1500\nbackoff_base_ms = 100\nbackoff_max_ms = 400\n";

pub(crate) fn stream_server(ex: &FakeExchange, dir: &std::path::Path) -> Server {
    stream_server_with(ex, dir, "")
}

pub(crate) fn stream_server_with(ex: &FakeExchange, dir: &std::path::Path, extra: &str) -> Server {
    let config = dir.join("live.toml");
    std::fs::write(&config, format!("{STREAM_CONFIG}{extra}")).unwrap();
    spawn(
        &dir.join("c.db"),
        &[
            "--config",
            config.to_str().unwrap(),
            "serve",
            "--upstream",
            &ex.url(),
            "--upstream-ws",
            &ex.ws_url(),
        ],
    )
}

#[test]
fn over_rest_alone_the_edge_meets_the_contract() {
    let ex = FakeExchange::start();
    let dir = tempfile::tempdir().unwrap();
    let srv = spawn(
        &dir.path().join("c.db"),
        &["serve", "--upstream", &ex.url()],
    );
    let _ = get(srv.addr, TARGET);
    let before = ex.klines_seen().len();
    let started = fake::now_ms();
    let seen = poll(&srv, Duration::from_millis(100), Duration::from_secs(6));
    let requests = ex.klines_seen().len() - before;
    let f = judge(&seen, 3 * SEC);
    f.report("REST only");
    eprintln!(
        "REST only: {requests} upstream klines requests for {} polls",
        seen.len()
    );
    assert!(f.wrong_after_bound.is_empty(), "{:?}", f.wrong_after_bound);
    assert!(pct(&f.close_visible_ms, 1.0) <= 3 * SEC, "{f:?}");
    assert!(pct(&f.forming_age_ms, 0.99) <= 2 * SEC + 300, "{f:?}");
    // One refresh a period (1 s) for the series, however often it is polled: 60 polls
    // cost about 6 upstream requests (a few more at chunk edges).
    let secs = (fake::now_ms() - started) / SEC + 1;
    assert!(
        requests as i64 <= 2 * secs,
        "{requests} requests in {secs} s"
    );
    assert!(stats(&srv)["streams"].is_null());
}

#[test]
fn from_the_stream_the_edge_meets_the_contract_through_drops_and_stalls() {
    let ex = FakeExchange::start();
    let dir = tempfile::tempdir().unwrap();
    let srv = stream_server(&ex, dir.path());
    wait_live(&srv);
    let start = fake::now_ms() / SEC * SEC;
    // Many clients at once cost one upstream subscription.
    std::thread::scope(|s| {
        for _ in 0..16 {
            s.spawn(|| poll(&srv, Duration::from_millis(50), Duration::from_secs(2)));
        }
        let seen = poll(&srv, Duration::from_millis(100), Duration::from_secs(4));
        let f = judge(&seen, SEC + 250);
        f.report("stream");
        assert!(f.wrong_after_bound.is_empty(), "{:?}", f.wrong_after_bound);
        assert!(pct(&f.close_visible_ms, 0.99) <= SEC + 250, "{f:?}");
        assert!(pct(&f.forming_age_ms, 0.99) <= SEC, "{f:?}");
    });
    assert_eq!(ex.ws_subscribes(), ["btcusdt@kline_1s"]);
    let up = stats(&srv);
    assert!(up["edge_from_stream"].as_u64().unwrap() > 0, "{up}");
    // A drop and a stall: the edge is served from REST meanwhile, and nothing is lost.
    ex.inject_ws(&[WsFault::Drop]);
    let seen = poll(&srv, Duration::from_millis(100), Duration::from_secs(3));
    ex.inject_ws(&[WsFault::Stall(3500)]);
    let mut more = poll(&srv, Duration::from_millis(100), Duration::from_secs(6));
    wait_live(&srv);
    more.extend(poll(
        &srv,
        Duration::from_millis(100),
        Duration::from_secs(2),
    ));
    for (what, s) in [("after a drop", &seen), ("through a stall", &more)] {
        let f = judge(s, 3 * SEC);
        f.report(what);
        assert!(f.wrong_after_bound.is_empty(), "{:?}", f.wrong_after_bound);
        assert!(pct(&f.forming_age_ms, 0.99) <= 2 * SEC + 300, "{f:?}");
    }
    let up = stats(&srv);
    let st = &up["streams"];
    assert!(st["reconnects"].as_u64().unwrap() >= 2, "{up}");
    assert!(st["stalls"].as_u64().unwrap() >= 1, "{up}");
    assert!(st["closed_stored"].as_u64().unwrap() > 0, "{up}");
    assert_eq!(st["streams"], 1);
    assert_eq!(ex.ws_subscribes().len() as u64, ex.ws_connections());
    let end = fake::now_ms() / SEC * SEC - 3 * SEC;
    drop(srv);
    assert_stored_equal(&dir.path().join("c.db"), start, end);
}

#[test]
fn a_refused_stream_falls_back_to_rest_and_recovers() {
    let ex = FakeExchange::start();
    ex.refuse_ws(4);
    let dir = tempfile::tempdir().unwrap();
    let srv = stream_server(&ex, dir.path());
    let seen = poll(&srv, Duration::from_millis(100), Duration::from_secs(2));
    let f = judge(&seen, 3 * SEC);
    assert!(f.wrong_after_bound.is_empty(), "{:?}", f.wrong_after_bound);
    wait_live(&srv);
    let st = stats(&srv)["streams"].clone();
    assert!(st["connect_failures"].as_u64().unwrap() >= 4, "{st}");
    let seen = poll(&srv, Duration::from_millis(100), Duration::from_secs(2));
    let f = judge(&seen, SEC + 250);
    assert!(f.wrong_after_bound.is_empty(), "{:?}", f.wrong_after_bound);
    assert!(pct(&f.forming_age_ms, 0.99) <= SEC, "{f:?}");
}

#[test]
fn malformed_foreign_and_late_frames_are_counted_never_stored() {
    let ex = FakeExchange::start();
    let dir = tempfile::tempdir().unwrap();
    let srv = stream_server(&ex, dir.path());
    wait_live(&srv);
    ex.inject_ws(&[WsFault::Malformed, WsFault::Malformed]);
    let seen = poll(&srv, Duration::from_millis(100), Duration::from_secs(3));
    let f = judge(&seen, SEC + 250);
    assert!(f.wrong_after_bound.is_empty(), "{:?}", f.wrong_after_bound);
    let st = stats(&srv)["streams"].clone();
    assert!(st["bad_frames"].as_u64().unwrap() >= 4, "{st}");
    assert!(st["unexpected"].as_u64().unwrap() >= 2, "{st}");
    assert!(st["out_of_order"].as_u64().unwrap() >= 1, "{st}");
    let metrics = String::from_utf8(get(srv.addr, "/metrics").body).unwrap();
    assert!(
        metrics
            .contains("candlecache_stream_bad_frames_total{exchange=\"binance\",market=\"spot\"} "),
        "{metrics}"
    );
    assert!(metrics.contains(
        "candlecache_stream_last_event_age_seconds{exchange=\"binance\",market=\"spot\",stream=\"btcusdt@kline_1s\"}"
    ));
    drop(srv);
    let (status, out, err) = run(&dir.path().join("c.db"), &["markets", "--json"]);
    assert!(status.success(), "{err}");
    let markets: Value = serde_json::from_str(&out).unwrap();
    let names: Vec<(&str, &str)> = markets
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["symbol"].as_str().unwrap(),
                m["timeframe"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(names, [(SYMBOL, "1s")]);
}

/// `bots` threads, each polling the latest 5 candles of 1s and 1m every 500 ms for
/// `secs`: returns (polls made, upstream klines requests caused).
fn fleet(ex: &FakeExchange, srv: &Server, bots: usize, secs: u64) -> (usize, usize) {
    let before = ex.klines_seen().len();
    let polls: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..bots)
            .map(|_| {
                s.spawn(|| {
                    let until = Instant::now() + Duration::from_secs(secs);
                    let mut n = 0;
                    while Instant::now() < until {
                        for iv in ["1s", "1m"] {
                            let t = format!("/api/v3/klines?symbol={SYMBOL}&interval={iv}&limit=5");
                            assert_eq!(get(srv.addr, &t).status, 200);
                            n += 1;
                        }
                        std::thread::sleep(Duration::from_millis(500));
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    (polls, ex.klines_seen().len() - before)
}

#[test]
fn a_fleet_costs_the_upstream_what_one_bot_costs() {
    let ex = FakeExchange::start();
    let dir = tempfile::tempdir().unwrap();
    let srv = spawn(
        &dir.path().join("c.db"),
        &["serve", "--upstream", &ex.url()],
    );
    fleet(&ex, &srv, 1, 1);
    let secs = 6;
    let (polls_1, up_1) = fleet(&ex, &srv, 1, secs);
    let (polls_6, up_6) = fleet(&ex, &srv, 6, secs);
    let per_bot_min = |n: usize, bots: usize| n as f64 * 60.0 / secs as f64 / bots as f64;
    eprintln!(
        "fleet over REST: 1 bot {:.0} polls/min -> {:.0} upstream requests/min; 6 bots {:.0} polls/bot-min -> {:.1} upstream requests/bot-min (direct: one exchange request per poll)",
        per_bot_min(polls_1, 1),
        per_bot_min(up_1, 1),
        per_bot_min(polls_6, 6),
        per_bot_min(up_6, 6),
    );
    assert!(polls_6 >= 5 * polls_1, "{polls_6} vs {polls_1}");
    // At most one refresh a second per series, whatever the number of bots.
    assert!(
        up_6 <= up_1 + 4,
        "{up_6} upstream requests for 6 bots vs {up_1} for one"
    );
    assert!(up_6 as u64 <= 2 * (secs + 1), "{up_6}");
}

/// The figures of docs/BENCHMARKS.md: `cargo test --release -p candlecache-tests --test it
/// live::freshness_figures -- --ignored --nocapture` (LIVE_SECS, default 60 s a mode).
#[test]
#[ignore = "a minute or two of polling; run by hand for docs/BENCHMARKS.md"]
fn freshness_figures() {
    let secs: u64 = std::env::var("LIVE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let ex = FakeExchange::start();
    let row = |what: &str, f: &Freshness| {
        let r = |v: &[i64]| format!("{} / {} / {}", pct(v, 0.5), pct(v, 0.99), pct(v, 1.0));
        println!(
            "| {what} | {} | {} | {} | {} |",
            r(&f.close_visible_ms),
            f.close_visible_ms.len(),
            r(&f.forming_age_ms),
            f.wrong_after_bound.len()
        );
    };
    println!("| edge from | close visible p50 / p99 / max (ms) | candles | forming age p50 / p99 / max (ms) | closed served wrong past the bound |\n|---|---|---|---|---|");
    let dir = tempfile::tempdir().unwrap();
    let rest = spawn(
        &dir.path().join("r.db"),
        &["serve", "--upstream", &ex.url()],
    );
    let _ = get(rest.addr, TARGET);
    let f = judge(
        &poll(&rest, Duration::from_millis(100), Duration::from_secs(secs)),
        3 * SEC,
    );
    row("REST only (refresh 1 s)", &f);
    drop(rest);
    let srv = stream_server(&ex, dir.path());
    wait_live(&srv);
    let f = judge(
        &poll(&srv, Duration::from_millis(100), Duration::from_secs(secs)),
        SEC,
    );
    row("upstream stream", &f);
    drop(srv);
    let srv = spawn(
        &dir.path().join("f.db"),
        &["serve", "--upstream", &ex.url()],
    );
    fleet(&ex, &srv, 1, 2);
    println!("\n| bots (2 series each, a poll every 500 ms) | polls a bot-minute (= exchange requests a bot-minute talking to it directly) | upstream requests a minute through candlecache | per bot-minute |\n|---|---|---|---|");
    for bots in [1, 3, 6] {
        let (polls, up) = fleet(&ex, &srv, bots, secs / 2);
        let min = (secs / 2) as f64 / 60.0;
        println!(
            "| {bots} | {:.0} | {:.0} | {:.1} |",
            polls as f64 / bots as f64 / min,
            up as f64 / min,
            up as f64 / bots as f64 / min
        );
    }
}

#[test]
fn streams_rotate_without_loss_and_idle_ones_are_unsubscribed() {
    let ex = FakeExchange::start();
    let dir = tempfile::tempdir().unwrap();
    let srv = stream_server_with(&ex, dir.path(), "rotate_ms = 2500\nidle_ms = 4000\n");
    wait_live(&srv);
    let start = fake::now_ms() / SEC * SEC;
    let seen = poll(&srv, Duration::from_millis(100), Duration::from_secs(6));
    let f = judge(&seen, 3 * SEC);
    assert!(f.wrong_after_bound.is_empty(), "{:?}", f.wrong_after_bound);
    let st = stats(&srv)["streams"].clone();
    assert!(st["reconnects"].as_u64().unwrap() >= 1, "{st}");
    assert_eq!(st["stalls"], 0, "{st}");
    let end = fake::now_ms() / SEC * SEC - 3 * SEC;
    // Nobody asks for 4 s: the stream is dropped, and its connection with it.
    let until = Instant::now() + Duration::from_secs(15);
    while stats(&srv)["streams"]["streams"] != 0 {
        assert!(
            Instant::now() < until,
            "never unsubscribed: {}",
            stats(&srv)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // The exchange stops sending it: an UNSUBSCRIBE (paced like every control message)
    // and, as it was the connection's last stream, the connection closed.
    let until = Instant::now() + Duration::from_secs(5);
    while ex.ws_open() != 0 {
        assert!(Instant::now() < until, "the idle connection stayed open");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        ex.ws_unsubscribes()
            .contains(&"btcusdt@kline_1s".to_owned()),
        "no UNSUBSCRIBE reached the exchange before the close"
    );
    // A new request subscribes again.
    wait_live(&srv);
    drop(srv);
    assert_stored_equal(&dir.path().join("c.db"), start, end);
}
