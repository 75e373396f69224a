use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// A market symbol such as `BTCUSDT`: 1 to 32 of A-Z and 0-9, upper case.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Symbol(String);

impl Symbol {
    /// Returns the symbol as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Splits the symbol into base and quote asset when its quote is a well-known one.
    pub fn split(&self) -> Option<(&str, &str)> {
        const QUOTES: &[&str] = &[
            "FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USD", "EUR", "GBP", "TRY", "BRL", "BTC",
            "ETH", "BNB", "DAI",
        ];
        QUOTES.iter().find_map(|q| {
            let base = self.0.strip_suffix(q)?;
            (!base.is_empty()).then(|| (base, &self.0[base.len()..]))
        })
    }
}

impl FromStr for Symbol {
    type Err = Error;

    /// Accepts any case and normalizes to upper case.
    fn from_str(s: &str) -> Result<Self, Error> {
        let valid = (1..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric());
        if !valid {
            return Err(Error::InvalidSymbol(s.chars().take(64).collect()));
        }
        Ok(Self(s.to_ascii_uppercase()))
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
        s.0
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_are_normalized_and_checked() {
        assert_eq!("btcusdt".parse::<Symbol>().unwrap().as_str(), "BTCUSDT");
        for bad in [
            "",
            "BTC-USDT",
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
    }
}
