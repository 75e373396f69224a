//! Candles as Arrow IPC, the binary wire format of the HTTP API.

use std::sync::Arc;

use arrow_array::builder::{Float64Builder, UInt64Builder};
use arrow_array::{ArrayRef, RecordBatch, TimestampMillisecondArray};
use arrow_ipc::writer::StreamWriter;

use crate::export::parquet_schema;
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
    ];
    RecordBatch::try_new(parquet_schema(), columns).map_err(err)
}
