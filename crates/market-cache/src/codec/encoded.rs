//! Answers as rows already written in a caller's text format. A closed chunk's rows are
//! written once and kept beside the chunk, so an answer over cached history is a copy of
//! byte ranges: no decoding, no candle copies, no number formatting.

use bytes::Bytes;

use crate::{Candle, Timeframe};

/// A text form of candle rows (a JSON array's elements, CSV lines): how one candle is
/// written and what stands between two rows.
pub trait RowFormat: Send + Sync {
    /// Tells this form's rows apart in the cache: two forms that write different bytes for
    /// one candle must have different ids.
    fn id(&self) -> &str;
    /// Written between two rows: `,` in a JSON array, nothing for lines ending in `\n`.
    fn separator(&self) -> &'static [u8];
    /// Appends the row of `c`, a candle of `tf`.
    fn write(&self, c: &Candle, tf: Timeframe, out: &mut Vec<u8>);
}

/// The rows of an answer in a [`RowFormat`], joined by its separator, after whatever
/// the caller's buffer held (an envelope's opening), so a body is written in one buffer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rows {
    /// The caller's bytes, then the rows.
    pub bytes: Vec<u8>,
    /// How many rows (candles) they hold.
    pub count: usize,
}

impl Rows {
    /// `candles` written in `format`.
    pub fn write(candles: &[Candle], tf: Timeframe, format: &dyn RowFormat) -> Self {
        Self::write_after(Vec::new(), candles, tf, format)
    }

    /// `candles` written in `format` after what `bytes` holds.
    pub fn write_after(
        mut bytes: Vec<u8>,
        candles: &[Candle],
        tf: Timeframe,
        format: &dyn RowFormat,
    ) -> Self {
        bytes.reserve(candles.len() * 64);
        for (i, c) in candles.iter().enumerate() {
            if i > 0 {
                bytes.extend_from_slice(format.separator());
            }
            format.write(c, tf, &mut bytes);
        }
        Self {
            bytes,
            count: candles.len(),
        }
    }
}

/// A chunk's candles as rows, with their open times (to cut the chunk to a request's
/// range) and where each row starts. Layout, little-endian: the count `n` (u32), `n` open
/// times (i64), `n + 1` row starts (u32, relative to the text), then the text: every row
/// followed by the separator, so rows `i..j` with the separators between them are
/// `text[start[i]..start[j] - separator.len()]`.
#[derive(Debug, Clone)]
pub(crate) struct RowBlock {
    bytes: Bytes,
    n: usize,
}

impl RowBlock {
    /// `candles` (in time order) written in `format`.
    pub(crate) fn write(candles: &[Candle], tf: Timeframe, format: &dyn RowFormat) -> Self {
        let n = candles.len();
        let head = 4 + n * 8 + (n + 1) * 4;
        let mut text = Vec::with_capacity(n * 64);
        let mut starts = Vec::with_capacity(n + 1);
        for c in candles {
            starts.push(text.len() as u32);
            format.write(c, tf, &mut text);
            text.extend_from_slice(format.separator());
        }
        starts.push(text.len() as u32);
        let mut out = Vec::with_capacity(head + text.len());
        out.extend_from_slice(&(n as u32).to_le_bytes());
        for c in candles {
            out.extend_from_slice(&c.open_time.to_le_bytes());
        }
        for s in starts {
            out.extend_from_slice(&s.to_le_bytes());
        }
        out.extend_from_slice(&text);
        Self {
            bytes: out.into(),
            n,
        }
    }

    /// Reads what [`Self::write`] wrote; `None` for anything else (truncated or foreign
    /// bytes, starts out of order or beyond the text).
    pub(crate) fn from_bytes(bytes: Bytes) -> Option<Self> {
        let n = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        let head = n.checked_mul(12)?.checked_add(8)?;
        let text_len = bytes.len().checked_sub(head)?;
        let block = Self { bytes, n };
        let mut prev = 0;
        for i in 0..=n {
            let s = block.start(i);
            if s < prev || s > text_len {
                return None;
            }
            prev = s;
        }
        Some(block)
    }

    /// The bytes to keep in the cache.
    pub(crate) fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    pub(crate) fn len(&self) -> usize {
        self.n
    }

    /// The open time of row `i`.
    pub(crate) fn time(&self, i: usize) -> i64 {
        let at = 4 + i * 8;
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.bytes[at..at + 8]);
        i64::from_le_bytes(b)
    }

    fn start(&self, i: usize) -> usize {
        let at = 4 + self.n * 8 + i * 4;
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.bytes[at..at + 4]);
        u32::from_le_bytes(b) as usize
    }

    /// Rows `range`, each followed by the separator.
    pub(crate) fn rows(&self, range: std::ops::Range<usize>) -> &[u8] {
        let text = 8 + self.n * 12;
        &self.bytes[text + self.start(range.start)..text + self.start(range.end)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Decimal;

    struct Lines;
    impl RowFormat for Lines {
        fn id(&self) -> &str {
            "lines"
        }
        fn separator(&self) -> &'static [u8] {
            b";"
        }
        fn write(&self, c: &Candle, _: Timeframe, out: &mut Vec<u8>) {
            out.extend_from_slice(format!("{}:{}", c.open_time, c.close).as_bytes());
        }
    }

    fn candle(t: i64, close: i128) -> Candle {
        let d = Decimal::new(close, 2);
        Candle {
            open_time: t,
            open: d,
            high: d,
            low: d,
            close: d,
            volume: d,
            quote_volume: None,
            trades: None,
            taker_base: None,
            taker_quote: None,
            volume_ccy: None,
        }
    }

    #[test]
    fn any_range_of_a_block_is_the_rows_written_directly() {
        let candles: Vec<Candle> = (0..7)
            .map(|i| candle(i * 60_000, 100 + i as i128))
            .collect();
        let block = RowBlock::from_bytes(
            RowBlock::write(&candles, Timeframe::M1, &Lines)
                .bytes()
                .clone(),
        )
        .unwrap();
        assert_eq!(block.len(), 7);
        for i in 0..=7 {
            for j in i..=7 {
                let direct = Rows::write(&candles[i..j], Timeframe::M1, &Lines);
                let mut cut = block.rows(i..j).to_vec();
                cut.truncate(cut.len().saturating_sub(1));
                assert_eq!(cut, direct.bytes, "{i}..{j}");
            }
        }
        assert_eq!(block.time(3), 180_000);
    }

    #[test]
    fn bytes_it_did_not_write_are_refused() {
        let candles: Vec<Candle> = (0..3).map(|i| candle(i, 1)).collect();
        let good = RowBlock::write(&candles, Timeframe::M1, &Lines)
            .bytes()
            .clone();
        for cut in 0..good.len() {
            // A cut in the head, or a text cut short that leaves the last start beyond it.
            assert!(RowBlock::from_bytes(good.slice(..cut)).is_none(), "{cut}");
        }
        assert!(RowBlock::from_bytes(Bytes::from_static(&[255, 255, 255, 255, 0])).is_none());
        let mut shuffled = good.to_vec();
        // The second row's start beyond the third's.
        let at = 4 + 3 * 8 + 4;
        shuffled[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(RowBlock::from_bytes(shuffled.into()).is_none());
    }
}
