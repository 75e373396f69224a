use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// What a symbol's candles are: spot trades, USD-M futures trades, or the USD-M mark price.
/// Binance lists the same name (`BTCUSDT`) on both markets with different prices, so the
/// kind is part of a series' identity everywhere: in the store, in cache keys and upstream.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Spot trades (`/api/v3/klines`).
    #[default]
    Spot,
    /// USD-M perpetual futures trades (`/fapi/v1/klines`).
    Futures,
    /// USD-M mark price (`/fapi/v1/markPriceKlines`): the volume fields are zero.
    Mark,
}

impl Kind {
    /// Every kind, in storage order.
    pub const ALL: [Kind; 3] = [Kind::Spot, Kind::Futures, Kind::Mark];

    /// The stored name: `spot`, `futures` or `mark`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Spot => "spot",
            Kind::Futures => "futures",
            Kind::Mark => "mark",
        }
    }

    /// The kind of a market type (`spot`, `futures`) and price kind (`trade`, `mark`) as
    /// `/api/crypto/ohlc` takes them; `None` for a combination that does not exist.
    pub fn of(market: &str, price: &str) -> Option<Kind> {
        match (market, price) {
            ("spot", "trade") => Some(Kind::Spot),
            ("futures", "trade") => Some(Kind::Futures),
            ("futures", "mark") => Some(Kind::Mark),
            _ => None,
        }
    }

    /// The market type (`spot`, `futures`) and price kind (`trade`, `mark`), the inverse
    /// of [`Kind::of`].
    pub fn market_and_price(self) -> (&'static str, &'static str) {
        match self {
            Kind::Spot => ("spot", "trade"),
            Kind::Futures => ("futures", "trade"),
            Kind::Mark => ("futures", "mark"),
        }
    }

    /// Whether the series is traded on the futures market (the futures upstream serves it).
    pub fn is_futures(self) -> bool {
        self != Kind::Spot
    }
}

impl FromStr for Kind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                Error::Config(format!("unknown market kind `{s}` (spot, futures, mark)"))
            })
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The exchange a series comes from: part of every series' identity (Binance and Bybit both
/// list `BTCUSDT`, at different prices).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Exchange {
    /// Binance (spot `api`, USD-M `fapi`).
    #[default]
    Binance,
    /// Bybit v5 (spot and linear perpetuals).
    Bybit,
    /// OKX v5 (spot and perpetual swaps).
    Okx,
}

impl Exchange {
    /// Every exchange, in storage order.
    pub const ALL: [Exchange; 3] = [Exchange::Binance, Exchange::Bybit, Exchange::Okx];

    /// The stored name: `binance`, `bybit` or `okx`.
    pub fn as_str(self) -> &'static str {
        match self {
            Exchange::Binance => "binance",
            Exchange::Bybit => "bybit",
            Exchange::Okx => "okx",
        }
    }

    /// The exchange's own name for its perpetual market, which names the object-store
    /// partitions of derivatives series (`binance_usdm`, `bybit_linear`, `okx_swap`).
    pub fn derivatives(self) -> &'static str {
        match self {
            Exchange::Binance => "usdm",
            Exchange::Bybit => "linear",
            Exchange::Okx => "swap",
        }
    }

    /// A small index, for tables kept per exchange.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl FromStr for Exchange {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Exchange::ALL
            .into_iter()
            .find(|e| e.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                Error::Config(format!(
                    "unknown exchange `{}` (binance, bybit, okx)",
                    s.chars().take(32).collect::<String>()
                ))
            })
    }
}

impl fmt::Display for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A market symbol such as `BTCUSDT` (1 to 32 of A-Z and 0-9, upper case) of one [`Kind`]
/// on one [`Exchange`].
///
/// Displays and serializes as the bare name, as exchanges write it; a parsed symbol is a
/// Binance spot one until [`Symbol::with_kind`] and [`Symbol::with_exchange`] say
/// otherwise. Cache keys use [`Symbol::key`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Symbol {
    exchange: Exchange,
    name: String,
    kind: Kind,
}

impl Symbol {
    /// Returns the symbol's name as text.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// What the symbol's candles are.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The same name as a series of `kind`.
    #[must_use]
    pub fn with_kind(mut self, kind: Kind) -> Self {
        self.kind = kind;
        self
    }

    /// The exchange the series comes from.
    pub fn exchange(&self) -> Exchange {
        self.exchange
    }

    /// The same name and kind on `exchange`.
    #[must_use]
    pub fn with_exchange(mut self, exchange: Exchange) -> Self {
        self.exchange = exchange;
        self
    }

    /// A key naming the series' symbol uniquely across kinds and exchanges: the name for
    /// Binance spot (so keys of the first series read as before), `F:NAME` for futures and
    /// `M:NAME` for mark price, prefixed `bybit:` or `okx:` on those exchanges.
    pub fn key(&self) -> String {
        let name = match self.kind {
            Kind::Spot => self.name.clone(),
            Kind::Futures => format!("F:{}", self.name),
            Kind::Mark => format!("M:{}", self.name),
        };
        match self.exchange {
            Exchange::Binance => name,
            e => format!("{e}:{name}"),
        }
    }

    /// Splits the symbol into base and quote asset when its quote is a well-known one.
    pub fn split(&self) -> Option<(&str, &str)> {
        // OKX names its instruments `BASE-QUOTE` (and `BASE-QUOTE-SWAP`).
        let mut parts = self.name.split('-');
        if let (Some(base), Some(quote)) = (parts.next(), parts.next()) {
            return Some((base, quote));
        }
        const QUOTES: &[&str] = &[
            "FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USD", "EUR", "GBP", "TRY", "BRL", "BTC",
            "ETH", "BNB", "DAI",
        ];
        QUOTES.iter().find_map(|q| {
            let base = self.name.strip_suffix(q)?;
            (!base.is_empty()).then(|| (base, &self.name[base.len()..]))
        })
    }
}

impl FromStr for Symbol {
    type Err = Error;

    /// Accepts any case and normalizes to upper case. Letters and digits, and single
    /// dashes between them (OKX's `BTC-USDT`, `BTC-USDT-SWAP`).
    fn from_str(s: &str) -> Result<Self, Error> {
        let valid = (1..=32).contains(&s.len())
            && s.split('-')
                .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric()));
        if !valid {
            return Err(Error::InvalidSymbol(s.chars().take(64).collect()));
        }
        Ok(Self {
            exchange: Exchange::Binance,
            name: s.to_ascii_uppercase(),
            kind: Kind::Spot,
        })
    }
}

impl TryFrom<String> for Symbol {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        s.parse()
    }
}

impl From<Symbol> for String {
    fn from(s: Symbol) -> String {
        s.name
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_pad_in_tables() {
        let s: Symbol = "xrpeth".parse().unwrap();
        assert_eq!(
            format!("[{s:<8}][{:<8}][{:>4}]", Kind::Spot, crate::Timeframe::M1),
            "[XRPETH  ][spot    ][  1m]"
        );
    }

    #[test]
    fn symbols_are_normalized_and_checked() {
        assert_eq!("btcusdt".parse::<Symbol>().unwrap().as_str(), "BTCUSDT");
        for bad in [
            "",
            "-BTC",
            "BTC--USDT",
            "BTC-",
            "BTC/USDT",
            "ÄBC",
            &"A".repeat(33),
            "BTC USDT",
            "1;DROP",
        ] {
            assert!(bad.parse::<Symbol>().is_err(), "{bad}");
        }
        let s: Symbol = "XRPETH".parse().unwrap();
        assert_eq!(s.split(), Some(("XRP", "ETH")));
        let s: Symbol = "BTCFDUSD".parse().unwrap();
        assert_eq!(s.split(), Some(("BTC", "FDUSD")));
        assert_eq!("USDT".parse::<Symbol>().unwrap().split(), None);
        let s: Symbol = "btc-usdt-swap".parse().unwrap();
        assert_eq!(
            (s.as_str(), s.split()),
            ("BTC-USDT-SWAP", Some(("BTC", "USDT")))
        );
    }

    #[test]
    fn kinds_keep_series_apart_but_print_the_exchange_name() {
        let spot: Symbol = "btcusdt".parse().unwrap();
        let fut = spot.clone().with_kind(Kind::Futures);
        let mark = spot.clone().with_kind(Kind::Mark);
        assert_ne!(spot, fut);
        assert_eq!(fut.to_string(), "BTCUSDT");
        let keys = [spot.key(), fut.key(), mark.key()];
        assert_eq!(keys, ["BTCUSDT", "F:BTCUSDT", "M:BTCUSDT"]);
        assert_eq!(Kind::of("futures", "mark"), Some(Kind::Mark));
        assert_eq!(Kind::of("spot", "mark"), None);
        let bybit = fut.clone().with_exchange(Exchange::Bybit);
        assert_ne!(bybit, fut);
        assert_eq!(bybit.key(), "bybit:F:BTCUSDT");
        assert_eq!(bybit.to_string(), "BTCUSDT");
        for e in Exchange::ALL {
            assert_eq!(e.as_str().parse::<Exchange>().unwrap(), e);
        }
        assert!("kraken".parse::<Exchange>().is_err());
        for k in Kind::ALL {
            assert_eq!(k.as_str().parse::<Kind>().unwrap(), k);
            let (m, p) = k.market_and_price();
            assert_eq!(Kind::of(m, p), Some(k));
        }
    }
}
