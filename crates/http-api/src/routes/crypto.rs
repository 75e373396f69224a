//! `/api/crypto/ohlc` and `/api/crypto/markets`: candlecache's own API.

use std::time::Instant;

use bytes::Bytes;
use hyper::header::ACCEPT;
use hyper::{Request, StatusCode};
use market_cache::{
    parse_time, Exchange, Fill, Request as ReadRequest, Symbol, Timeframe, DEFAULT_LIMIT,
};
use serde_json::json;

use crate::encode::{CsvRows, JsonRows};
use crate::query::Params;
use crate::reply::{accepts_gzip, envelope, Reply};
use crate::state::{App, Made};
use crate::{Error, Result};

impl App {
    pub(crate) async fn ohlc<B>(&self, req: &Request<B>, p: &Params) -> Result<Reply> {
        let market = p.get("market").unwrap_or("spot");
        let price = p.get("price").unwrap_or("trade");
        let kind = market_cache::Kind::of(market, price).ok_or_else(|| {
            Error::InvalidFormat(format!(
                "market `{}` with price `{}` does not exist: market is spot or futures, price is trade or mark (mark only for futures)",
                clip(market),
                clip(price)
            ))
        })?;
        let exchange = exchange(p)?.unwrap_or_default();
        let symbol = p
            .require("symbol")?
            .parse::<Symbol>()?
            .with_kind(kind)
            .with_exchange(exchange);
        let timeframe: Timeframe = p.require("timeframe")?.parse()?;
        // `tz=+08:00`: the candles of that span opening on that clock (OKX's Hong Kong
        // bars), the same as `timeframe=1d+08:00`.
        let timeframe = match p.get("tz").filter(|s| !s.is_empty()) {
            None => timeframe,
            Some(tz) => {
                let minutes = market_cache::parse_offset(tz).ok_or_else(|| {
                    Error::InvalidTimeframe(format!(
                        "tz `{}` is not an offset from UTC like +08:00 or -05:00",
                        clip(tz)
                    ))
                })?;
                timeframe
                    .on_utc()
                    .with_offset(timeframe.offset_minutes() + minutes)?
            }
        };
        if kind.is_futures() && timeframe == Timeframe::S1 {
            return Err(Error::InvalidTimeframe(
                "the futures market has no 1s candles (1m and up)".into(),
            ));
        }
        // An empty value is an absent one, as Binance reads its parameters.
        let start = p
            .get("start")
            .filter(|s| !s.is_empty())
            .map(parse_time)
            .transpose()?;
        // Without a start the latest `limit` candles before `end` are answered; without an
        // end, up to now, the forming candle included.
        let end = match p.get("end").filter(|s| !s.is_empty()) {
            Some(e) => parse_time(e)?,
            None => timeframe.next(self.read.now()),
        };
        if start.is_some_and(|s| s >= end) {
            return Err(Error::InvalidRange);
        }
        let limit = match p.get("limit") {
            None => DEFAULT_LIMIT.min(self.max_rows),
            Some(l) => {
                let n: usize = l
                    .parse()
                    .map_err(|_| Error::InvalidLimit { max: self.max_rows })?;
                if n == 0 {
                    return Err(Error::InvalidLimit { max: self.max_rows });
                }
                if n > self.max_rows {
                    return Err(Error::RangeTooLarge {
                        asked: n,
                        max: self.max_rows,
                    });
                }
                n
            }
        };
        let fill = match p.get("fill").unwrap_or("none") {
            "none" => Fill::None,
            "previous" => Fill::Previous,
            other => {
                return Err(Error::InvalidFormat(format!(
                    "fill `{}` is not none or previous",
                    clip(other)
                )))
            }
        };
        let accept = req
            .headers()
            .get(ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let format = match p.get("format") {
            Some(f @ ("json" | "csv" | "arrow")) => f,
            Some(other) => {
                return Err(Error::InvalidFormat(format!(
                    "format `{}` is not json, csv or arrow",
                    clip(other)
                )))
            }
            None if accept.contains("text/csv") => "csv",
            None if accept.contains("application/vnd.apache.arrow") => "arrow",
            None => "json",
        };
        let gzip = accepts_gzip(req);
        // A repeated request is a lookup of ready bytes.
        let key = format!(
            "ohlc|{}|{timeframe}|{start:?}|{end}|{limit}|{fill:?}|{format}|{gzip}",
            symbol.key()
        );
        let request = ReadRequest {
            symbol: symbol.clone(),
            timeframe,
            start,
            end,
            limit,
            fill,
        };
        self.answer(&key, gzip, || async {
            let t = Instant::now();
            // JSON and CSV come as rows the read path keeps written for closed history;
            // Arrow is built from the candles.
            let (answer, content_type, body) = match format {
                "arrow" => {
                    let answer = self.read.get(&request).await?;
                    let body = market_cache::arrow_ipc(&answer.candles)?;
                    let answer = answer.map(|_| ());
                    (answer, "application/vnd.apache.arrow.stream", body)
                }
                "csv" => {
                    let head = crate::encode::CSV_HEADER.to_vec();
                    let mut answer = self.read.get_rows(&request, &CsvRows, head).await?;
                    let body = std::mem::take(&mut answer.candles.bytes);
                    (answer.map(|_| ()), "text/csv", body)
                }
                _ => {
                    let head = crate::encode::json_open(&symbol, timeframe);
                    let mut answer = self.read.get_rows(&request, &JsonRows, head).await?;
                    crate::encode::json_close(&mut answer, self.read.now());
                    let body = std::mem::take(&mut answer.candles.bytes);
                    (answer.map(|_| ()), "application/json", body)
                }
            };
            // The read and the encoding are one step for JSON and CSV: rows are copied as
            // they are gathered.
            let source = format!("{:?}", answer.source).to_lowercase();
            Ok(Made {
                status: StatusCode::OK,
                content_type,
                body: Bytes::from(body),
                keep_for: answer.keep_for(),
                timing: format!("{source};dur={:.2}", t.elapsed().as_secs_f64() * 1000.0),
            })
        })
        .await
    }

    pub(crate) async fn markets(&self, p: &Params) -> Result<Reply> {
        let mut markets = self.read.markets().await?;
        if let Some(e) = exchange(p)? {
            markets.retain(|m| m.exchange == e);
        }
        Ok(Reply::json(envelope(self.read.now(), json!(markets), None)))
    }
}

/// The `exchange` parameter (`binance`, `bybit`), if given.
fn exchange(p: &Params) -> Result<Option<Exchange>> {
    p.get("exchange")
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.parse::<Exchange>().map_err(|_| {
                Error::InvalidFormat(format!("exchange `{}` is not binance or bybit", clip(e)))
            })
        })
        .transpose()
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}
