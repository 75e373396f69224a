//! Candles as Arrow IPC, the binary wire format of the HTTP API.

use std::sync::Arc;

use arrow_array::builder::{Float64Builder, UInt64Builder};
use arrow_array::{ArrayRef, RecordBatch, TimestampMillisecondArray};
use arrow_ipc::writer::StreamWriter;

use super::schema::parquet_schema;
use crate::{Candle, Decimal, Error, Result};

/// Encodes candles as an Arrow IPC stream: `time` as timestamp(ms, UTC), prices and
/// volumes as float64, `trades` as uint64 (the optional columns nullable).
///
/// # Errors
/// [`Error::Encode`] if Arrow refuses the batch.
pub fn arrow_ipc(candles: &[Candle]) -> Result<Vec<u8>> {
    let err = |e: arrow_schema::ArrowError| Error::Encode {
        what: "arrow",
        message: e.to_string(),
    };
    let batch = candles_batch(candles)?;
    let mut out = Vec::new();
    {
        let mut w = StreamWriter::try_new(&mut out, &parquet_schema()).map_err(err)?;
        w.write(&batch).map_err(err)?;
        w.finish().map_err(err)?;
    }
    Ok(out)
}

/// Candles as one batch of [`parquet_schema`].
pub(crate) fn candles_batch(candles: &[Candle]) -> Result<RecordBatch> {
    let err = |e: arrow_schema::ArrowError| Error::Encode {
        what: "arrow",
        message: e.to_string(),
    };
    let f = |get: &dyn Fn(&Candle) -> Option<Decimal>| -> ArrayRef {
        let mut b = Float64Builder::with_capacity(candles.len());
        for c in candles {
            b.append_option(get(c).map(Decimal::to_f64));
        }
        Arc::new(b.finish())
    };
    let mut trades = UInt64Builder::with_capacity(candles.len());
    for c in candles {
        trades.append_option(c.trades);
    }
    let time =
        TimestampMillisecondArray::from(candles.iter().map(|c| c.open_time).collect::<Vec<_>>())
            .with_timezone("UTC");
    let columns: Vec<ArrayRef> = vec![
        Arc::new(time),
        f(&|c| Some(c.open)),
        f(&|c| Some(c.high)),
        f(&|c| Some(c.low)),
        f(&|c| Some(c.close)),
        f(&|c| Some(c.volume)),
        f(&|c| c.quote_volume),
        Arc::new(trades.finish()),
        f(&|c| c.taker_base),
        f(&|c| c.taker_quote),
        f(&|c| c.volume_ccy),
    ];
    RecordBatch::try_new(parquet_schema(), columns).map_err(err)
}

/// A chunk's candles as the read path keeps them in memory: fixed-width little-endian
/// fields (time; per decimal an i64 mantissa and its scale; a presence byte for the
/// optional ones), so a hit decodes with plain loads instead of a varint per field. A
/// chunk with a mantissa beyond 64 bits is kept in postcard instead (first byte 0).
pub(crate) fn encode_chunk(candles: &[Candle]) -> bytes::Bytes {
    let fits = |d: Decimal| i64::try_from(d.mantissa()).is_ok();
    let all_fit = candles.iter().all(|c| {
        [c.open, c.high, c.low, c.close, c.volume]
            .into_iter()
            .chain(
                [c.quote_volume, c.taker_base, c.taker_quote, c.volume_ccy]
                    .into_iter()
                    .flatten(),
            )
            .all(fits)
    });
    if !all_fit {
        let mut out = vec![0u8];
        out.extend(postcard::to_allocvec(candles).unwrap_or_default());
        return out.into();
    }
    let mut out = Vec::with_capacity(5 + candles.len() * 64);
    out.push(1u8);
    out.extend_from_slice(&(candles.len() as u32).to_le_bytes());
    let dec = |out: &mut Vec<u8>, d: Decimal| {
        out.extend_from_slice(&(d.mantissa() as i64).to_le_bytes());
        out.push(d.scale());
    };
    for c in candles {
        out.extend_from_slice(&c.open_time.to_le_bytes());
        let flags = u8::from(c.quote_volume.is_some())
            | u8::from(c.trades.is_some()) << 1
            | u8::from(c.taker_base.is_some()) << 2
            | u8::from(c.taker_quote.is_some()) << 3
            | u8::from(c.volume_ccy.is_some()) << 4;
        out.push(flags);
        for d in [c.open, c.high, c.low, c.close, c.volume] {
            dec(&mut out, d);
        }
        for d in [c.quote_volume, c.taker_base, c.taker_quote, c.volume_ccy]
            .into_iter()
            .flatten()
        {
            dec(&mut out, d);
        }
        if let Some(t) = c.trades {
            out.extend_from_slice(&t.to_le_bytes());
        }
    }
    out.into()
}

/// Reads what [`encode_chunk`] wrote.
///
/// # Errors
/// [`Error::Encode`] for bytes it did not write (truncated or foreign).
pub(crate) fn decode_chunk(bytes: &[u8]) -> Result<Vec<Candle>> {
    let bad = || Error::Encode {
        what: "chunk",
        message: "not a chunk this build wrote".into(),
    };
    match bytes.split_first() {
        Some((0, rest)) => postcard::from_bytes(rest).map_err(|_| bad()),
        Some((1, rest)) => {
            let mut r = Reader(rest);
            let n = u32::from_le_bytes(r.take::<4>().ok_or_else(bad)?) as usize;
            // Each candle takes at least 54 bytes: a count beyond that is not ours.
            if n > r.0.len() / 54 {
                return Err(bad());
            }
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                out.push(r.candle().ok_or_else(bad)?);
            }
            Ok(out)
        }
        _ => Err(bad()),
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    fn i64(&mut self) -> Option<i64> {
        self.take::<8>().map(i64::from_le_bytes)
    }

    fn dec(&mut self) -> Option<Decimal> {
        let m = self.i64()?;
        let [s] = self.take::<1>()?;
        Some(Decimal::new(i128::from(m), s))
    }

    fn candle(&mut self) -> Option<Candle> {
        let open_time = self.i64()?;
        let [flags] = self.take::<1>()?;
        let (open, high, low, close, volume) = (
            self.dec()?,
            self.dec()?,
            self.dec()?,
            self.dec()?,
            self.dec()?,
        );
        let mut opt = |bit: u8| -> Option<Option<Decimal>> {
            if flags & bit != 0 {
                self.dec().map(Some)
            } else {
                Some(None)
            }
        };
        let quote_volume = opt(1)?;
        let taker_base = opt(4)?;
        let taker_quote = opt(8)?;
        let volume_ccy = opt(16)?;
        let trades = if flags & 2 != 0 {
            Some(u64::from_le_bytes(self.take::<8>()?))
        } else {
            None
        };
        Some(Candle {
            open_time,
            open,
            high,
            low,
            close,
            volume,
            quote_volume,
            trades,
            taker_base,
            taker_quote,
            volume_ccy,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dec() -> impl Strategy<Value = Decimal> {
        prop_oneof![
            (any::<i64>(), 0u8..=18).prop_map(|(m, s)| Decimal::new(i128::from(m), s)),
            (any::<i128>(), 0u8..=18).prop_map(|(m, s)| Decimal::new(m, s)),
        ]
    }

    fn candle() -> impl Strategy<Value = Candle> {
        (
            any::<i64>(),
            [dec(), dec(), dec(), dec(), dec()],
            proptest::option::of(dec()),
            proptest::option::of(any::<u64>()),
            proptest::option::of(dec()),
            proptest::option::of(dec()),
            proptest::option::of(dec()),
        )
            .prop_map(|(t, [o, h, l, c, v], qv, tr, tb, tq, vc)| Candle {
                open_time: t,
                open: o,
                high: h,
                low: l,
                close: c,
                volume: v,
                quote_volume: qv,
                trades: tr,
                taker_base: tb,
                taker_quote: tq,
                volume_ccy: vc,
            })
    }

    proptest! {
        #[test]
        fn chunks_round_trip_field_for_field(candles in proptest::collection::vec(candle(), 0..20)) {
            let bytes = encode_chunk(&candles);
            let back = decode_chunk(&bytes).unwrap();
            // Field for field, scales included (Decimal's == compares values only).
            let parts = |c: &Candle| format!("{c:?}");
            prop_assert_eq!(
                back.iter().map(parts).collect::<Vec<_>>(),
                candles.iter().map(parts).collect::<Vec<_>>()
            );
            // Anything cut short is refused, never misread.
            if !bytes.is_empty() {
                prop_assert!(decode_chunk(&bytes[..bytes.len() - 1]).is_err() || candles.is_empty());
            }
        }
    }
}
