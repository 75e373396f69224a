use std::fmt;
use std::str::FromStr;

use crate::Error;

/// An exact decimal number: an integer mantissa and a count of decimal places.
///
/// Exchanges send prices and volumes as decimal strings; keeping them as mantissa and
/// scale (never through a float) is how they round-trip exactly.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct Decimal {
    mantissa: i128,
    scale: u8,
}

/// The most decimal places a value may have.
pub const MAX_SCALE: u8 = 18;

impl Decimal {
    /// Creates `mantissa / 10^scale`.
    pub fn new(mantissa: i128, scale: u8) -> Self {
        Self { mantissa, scale }
    }

    /// Returns the mantissa.
    pub fn mantissa(self) -> i128 {
        self.mantissa
    }

    /// Returns the number of decimal places.
    pub fn scale(self) -> u8 {
        self.scale
    }

    /// Rounds a float to `scale` places, for sources that carry floats (freqtrade JSON,
    /// float Parquet columns). Returns `None` for NaN, infinities and overflow.
    pub fn from_f64(v: f64, scale: u8) -> Option<Self> {
        if !v.is_finite() {
            return None;
        }
        // Through the shortest round-trip text, so 0.1 becomes 1/10 and not 0.1000000000000000055.
        let d: Decimal = format!("{v}").parse().ok()?;
        Some(d.round_to(scale))
    }

    /// Rounds half away from zero to `scale` places (or pads with zeros).
    pub fn round_to(self, scale: u8) -> Self {
        if scale >= self.scale {
            let m = self
                .mantissa
                .checked_mul(10_i128.pow(u32::from(scale - self.scale)));
            return m.map_or(self, |m| Self::new(m, scale));
        }
        let div = 10_i128.pow(u32::from(self.scale - scale));
        let (q, r) = (self.mantissa / div, self.mantissa % div);
        let q = if r.abs() * 2 >= div {
            q + self.mantissa.signum()
        } else {
            q
        };
        Self::new(q, scale)
    }

    /// Returns the mantissa at `scale` places if no nonzero digit is lost.
    pub fn at_scale(self, scale: u8) -> Option<i128> {
        if scale >= self.scale {
            self.mantissa
                .checked_mul(10_i128.pow(u32::from(scale - self.scale)))
        } else {
            let div = 10_i128.pow(u32::from(self.scale - scale));
            (self.mantissa % div == 0).then_some(self.mantissa / div)
        }
    }

    /// Returns the decimal places left after dropping trailing zeros.
    pub fn significant_scale(self) -> u8 {
        let (mut m, mut s) = (self.mantissa, self.scale);
        while s > 0 && m % 10 == 0 {
            m /= 10;
            s -= 1;
        }
        s
    }

    /// Returns the nearest float.
    pub fn to_f64(self) -> f64 {
        // Both operands are exact for |mantissa| < 2^53 and scale <= 22, so the quotient
        // is correctly rounded.
        self.mantissa as f64 / 10_f64.powi(i32::from(self.scale))
    }

    /// Returns whether the value is below zero.
    pub fn is_negative(self) -> bool {
        self.mantissa < 0
    }

    /// Appends the value with exactly its scale's places (as `Display` writes it), without
    /// going through the formatting machinery: encoders call this for every number.
    pub fn write_exact(self, out: &mut Vec<u8>) {
        write_digits(self.mantissa, usize::from(self.scale), out);
    }

    /// Appends the text of [`Decimal::to_f64`] as Rust and JSON print floats (the shortest
    /// form that reads back as the same float, never an exponent), e.g. `1482` for
    /// `1482.00000000`. With at most 15 significant digits that is the decimal itself
    /// without trailing zeros (two such decimals never share a float), written directly;
    /// longer ones go through the float.
    pub fn write_shortest(self, out: &mut Vec<u8>) {
        // Trailing zeros trimmed in 64 bits where the value fits (u128 division is a call).
        let (m, s) = match i64::try_from(self.mantissa) {
            Ok(mut m) => {
                let mut s = self.scale;
                while s > 0 && m % 10 == 0 {
                    m /= 10;
                    s -= 1;
                }
                (i128::from(m), s)
            }
            Err(_) => {
                let (mut m, mut s) = (self.mantissa, self.scale);
                while s > 0 && m % 10 == 0 {
                    m /= 10;
                    s -= 1;
                }
                (m, s)
            }
        };
        if m.unsigned_abs() < 1_000_000_000_000_000 && s <= 22 {
            write_digits(m, usize::from(s), out);
        } else {
            use std::io::Write as _;
            let _ = write!(out, "{}", self.to_f64());
        }
    }
}

/// Two-digit groups, so a number takes half as many divisions.
const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Appends `mantissa / 10^scale` with exactly `scale` places.
fn write_digits(mantissa: i128, scale: usize, out: &mut Vec<u8>) {
    let mut buf = [0u8; 40];
    let mut i = buf.len();
    let abs = mantissa.unsigned_abs();
    // Nearly every value fits 64 bits, where division is a few cycles (u128's is a call).
    if let Ok(mut v) = u64::try_from(abs) {
        while v >= 100 {
            let r = (v % 100) as usize * 2;
            v /= 100;
            i -= 2;
            buf[i..i + 2].copy_from_slice(&PAIRS[r..r + 2]);
        }
        if v >= 10 {
            let r = v as usize * 2;
            i -= 2;
            buf[i..i + 2].copy_from_slice(&PAIRS[r..r + 2]);
        } else {
            i -= 1;
            buf[i] = b'0' + v as u8;
        }
    } else {
        let mut v = abs;
        while v > 0 {
            i -= 1;
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    }
    let digits = &buf[i..];
    if mantissa < 0 {
        out.push(b'-');
    }
    if scale == 0 {
        out.extend_from_slice(digits);
    } else if digits.len() > scale {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.extend_from_slice(int);
        out.push(b'.');
        out.extend_from_slice(frac);
    } else {
        out.extend_from_slice(b"0.");
        out.resize(out.len() + scale - digits.len(), b'0');
        out.extend_from_slice(digits);
    }
}

/// The sum, at the larger of the two scales.
impl std::ops::Add for Decimal {
    type Output = Decimal;

    fn add(self, o: Decimal) -> Decimal {
        let s = self.scale.max(o.scale);
        match (self.at_scale(s), o.at_scale(s)) {
            (Some(a), Some(b)) if a.checked_add(b).is_some() => Decimal::new(a + b, s),
            // Beyond 38 digits: no candle volume gets there; keep the float's precision.
            _ => Decimal::from_f64(self.to_f64() + o.to_f64(), s).unwrap_or(self),
        }
    }
}

/// Equal by value: `1.50 == 1.5`.
impl PartialEq for Decimal {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Decimal {}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if self.scale == other.scale {
            return self.mantissa.cmp(&other.mantissa);
        }
        let s = self.scale.max(other.scale);
        match (self.at_scale(s), other.at_scale(s)) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => self.to_f64().total_cmp(&other.to_f64()),
        }
    }
}

impl FromStr for Decimal {
    type Err = Error;

    /// Parses `-12.3400`, `1e-7`, `+5`, `.5`; keeps the written number of places.
    fn from_str(s: &str) -> Result<Self, Error> {
        // Exchange files are almost all plain numbers: one pass over the bytes, no searching.
        if let Some(d) = parse_plain(s.as_bytes()) {
            return Ok(d);
        }
        parse_general(s)
    }
}

/// `[-+]?digits[.digits]` with at most 19 digits and [`MAX_SCALE`] places; `None` for
/// anything else, which [`parse_general`] decides.
fn parse_plain(b: &[u8]) -> Option<Decimal> {
    let (neg, digits) = match b.first()? {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    let (mut m, mut n, mut dot) = (0u64, 0usize, None);
    for (i, &c) in digits.iter().enumerate() {
        match c {
            b'0'..=b'9' => {
                // 19 digits always fit a u64; more go the general way.
                if n == 19 {
                    return None;
                }
                m = m * 10 + u64::from(c - b'0');
                n += 1;
            }
            b'.' if dot.is_none() => dot = Some(i),
            _ => return None,
        }
    }
    let scale = dot.map_or(0, |d| digits.len() - d - 1);
    if n == 0 || scale > usize::from(MAX_SCALE) {
        return None;
    }
    let m = i128::from(m);
    Some(Decimal::new(if neg { -m } else { m }, scale as u8))
}

/// Every form [`Decimal::from_str`] takes: surrounding spaces, exponents, long mantissas.
fn parse_general(s: &str) -> Result<Decimal, Error> {
    let bad = || Error::InvalidNumber(s.chars().take(40).collect());
    let t = s.trim();
    let (t, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], t[i + 1..].parse::<i32>().map_err(|_| bad())?),
        None => (t, 0),
    };
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if int.is_empty() && frac.is_empty() || int.len() + frac.len() > 38 {
        return Err(bad());
    }
    // Up to 19 digits fit a u64, which is several times faster to build than an i128.
    let mut small: u64 = 0;
    let mut m: i128 = 0;
    for (i, b) in int.bytes().chain(frac.bytes()).enumerate() {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return Err(bad());
        }
        if i < 19 {
            small = small * 10 + u64::from(digit);
        } else {
            if i == 19 {
                m = i128::from(small);
            }
            m = m * 10 + i128::from(digit);
        }
    }
    if int.len() + frac.len() <= 19 {
        m = i128::from(small);
    }
    let mut scale = frac.len() as i32 - exp;
    if scale < 0 {
        m = m
            .checked_mul(10_i128.checked_pow((-scale) as u32).ok_or_else(bad)?)
            .ok_or_else(bad)?;
        scale = 0;
    }
    if scale > i32::from(MAX_SCALE) {
        // Beyond 18 places: round, since no exchange quotes that finely.
        let d = Decimal::new(if neg { -m } else { m }, 38.min(scale as u8));
        if scale > 38 {
            return Err(bad());
        }
        return Ok(d.round_to(MAX_SCALE));
    }
    Ok(Decimal::new(if neg { -m } else { m }, scale as u8))
}

impl fmt::Display for Decimal {
    /// Writes the value with exactly its scale's places, e.g. `1482.00000000`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::with_capacity(48);
        self.write_exact(&mut out);
        // Only ASCII digits, '-' and '.' were written.
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    proptest::proptest! {
        #[test]
        fn the_one_pass_parser_agrees_with_the_general_one(
            s in "[-+]?[0-9]{0,22}(\\.[0-9]{0,22})?|[-+. 0-9eE]{0,12}",
        ) {
            let general = parse_general(&s).map(|d| (d.mantissa(), d.scale())).ok();
            if let Some(fast) = parse_plain(s.as_bytes()) {
                proptest::prop_assert_eq!(Some((fast.mantissa(), fast.scale())), general);
            }
            let parsed = s.parse::<Decimal>().map(|d| (d.mantissa(), d.scale())).ok();
            proptest::prop_assert_eq!(parsed, general);
        }

        #[test]
        fn shortest_is_the_float_as_rust_prints_it(
            m in proptest::prelude::any::<i64>(),
            small in -100_000_000i64..100_000_000,
            scale in 0u8..=18,
        ) {
            for m in [i128::from(m), i128::from(small)] {
                let d = Decimal::new(m, scale);
                let mut out = Vec::new();
                d.write_shortest(&mut out);
                proptest::prop_assert_eq!(String::from_utf8(out).unwrap(), d.to_f64().to_string());
                let mut exact = Vec::new();
                d.write_exact(&mut exact);
                let back: Decimal = std::str::from_utf8(&exact).unwrap().parse().unwrap();
                proptest::prop_assert_eq!((back.mantissa(), back.scale()), (m, scale));
            }
        }
    }

    #[test]
    fn decimals_round_trip_as_written() {
        for s in [
            "0.00141342",
            "1482.00000000",
            "-3.5",
            "42",
            "0.0",
            "12345678901234.00",
            "107356219.47580000",
        ] {
            assert_eq!(d(s).to_string(), s);
        }
        assert_eq!(d("1e-7").to_string(), "0.0000001");
        assert_eq!(d("2.5E3").to_string(), "2500");
        assert_eq!(d(".5").to_string(), "0.5");
        for bad in [
            "", "-", ".", "1.2.3", "abc", "1,5", "0x10", "NaN", "inf", "1e", "--1",
        ] {
            assert!(bad.parse::<Decimal>().is_err(), "{bad}");
        }
    }

    #[test]
    fn scales_convert_only_without_loss() {
        assert_eq!(d("1482.00000000").at_scale(2), Some(148_200));
        assert_eq!(d("0.00141342").at_scale(4), None);
        assert_eq!(d("0.5").at_scale(8), Some(50_000_000));
        assert_eq!(d("1.2300").significant_scale(), 2);
        assert_eq!(d("2.5").round_to(0), d("3"));
        assert_eq!(d("-2.5").round_to(0), d("-3"));
        assert_eq!(
            Decimal::from_f64("2697616.0709080002".parse::<f64>().unwrap(), 8)
                .unwrap()
                .to_string(),
            "2697616.07090800"
        );
        assert_eq!(
            Decimal::from_f64(0.1 + 0.2, 8).unwrap().to_string(),
            "0.30000000"
        );
        assert!(Decimal::from_f64(f64::NAN, 8).is_none());
        assert_eq!(d("1.50"), d("1.5"));
        assert!(d("0.9") < d("1"));
        assert_eq!(d("0.00141342").to_f64(), 0.00141342);
    }
}
