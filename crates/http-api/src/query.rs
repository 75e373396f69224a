//! Query strings: percent-decoding, duplicates, and the parameters of `/api/crypto/ohlc`.

use crate::{Error, Result};

/// Decoded `key=value` pairs, refusing duplicates.
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub(crate) fn parse(query: Option<&str>) -> Result<Self> {
        let mut out: Vec<(String, String)> = Vec::new();
        for pair in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = decode(k).ok_or_else(|| {
                Error::InvalidFormat("the query string is not valid UTF-8 after decoding".into())
            })?;
            let v = decode(v).ok_or_else(|| {
                Error::InvalidFormat(format!("parameter `{k}` is not valid UTF-8 after decoding"))
            })?;
            if out.iter().any(|(o, _)| *o == k) {
                return Err(Error::DuplicateParameter(k.chars().take(64).collect()));
            }
            out.push((k, v));
        }
        Ok(Self(out))
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn require(&self, key: &'static str) -> Result<&str> {
        self.get(key)
            .filter(|v| !v.is_empty())
            .ok_or(Error::MissingParameter(key))
    }
}

/// Percent-decodes one key or value (`+` is a space); `None` if it is not UTF-8 after.
pub(crate) fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b'%' => return None,
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode_and_refuse_duplicates() {
        let p = Params::parse(Some(
            "symbol=btc%55sdt&start=2024-01-01T00%3A00%3A00Z&x=a+b",
        ))
        .unwrap();
        assert_eq!(p.get("symbol"), Some("btcUsdt"));
        assert_eq!(p.get("start"), Some("2024-01-01T00:00:00Z"));
        assert_eq!(p.get("x"), Some("a b"));
        assert!(matches!(
            Params::parse(Some("a=1&a=2")),
            Err(Error::DuplicateParameter(_))
        ));
        assert!(Params::parse(Some("a=%zz")).is_err());
        assert!(Params::parse(Some("a=%4")).is_err());
        assert!(Params::parse(Some("a=%ff")).is_err());
        assert!(matches!(
            Params::parse(None).unwrap().require("symbol"),
            Err(Error::MissingParameter("symbol"))
        ));
    }

    proptest::proptest! {
        #[test]
        fn any_query_string_parses_or_is_refused_by_name(q in "\\PC{0,80}", raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80)) {
            match Params::parse(Some(&q)) {
                Ok(p) => {
                    // Every pair is kept, and retrievable by its decoded name with its
                    // decoded value.
                    let pairs: Vec<&str> = q.split('&').filter(|kv| !kv.is_empty()).collect();
                    proptest::prop_assert_eq!(p.0.len(), pairs.len());
                    for kv in pairs {
                        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                        let (k, v) = (decode(k).unwrap(), decode(v).unwrap());
                        proptest::prop_assert_eq!(p.get(&k), Some(v.as_str()));
                    }
                }
                // Refused by name: bad escapes or a repeated parameter, nothing else.
                Err(e) => proptest::prop_assert!(
                    matches!(e, Error::InvalidFormat(_) | Error::DuplicateParameter(_)),
                    "{e:?}"
                ),
            }
            let lossy = String::from_utf8_lossy(&raw);
            if let Err(e) = Params::parse(Some(&lossy)) {
                proptest::prop_assert!(
                    matches!(e, Error::InvalidFormat(_) | Error::DuplicateParameter(_)),
                    "{e:?}"
                );
            }
        }
    }
}
