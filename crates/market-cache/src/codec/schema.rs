//! The Arrow schemas of candles: as batches are read ([`candle_schema`]) and as Parquet
//! is written (time as a UTC timestamp).

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// The Arrow schema of candle batches: time as int64 ms, prices and volumes as float64,
/// trades as uint64; the columns a source may lack are nullable.
pub fn candle_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("time", DataType::Int64, false),
        Field::new("open", DataType::Float64, false),
        Field::new("high", DataType::Float64, false),
        Field::new("low", DataType::Float64, false),
        Field::new("close", DataType::Float64, false),
        Field::new("volume", DataType::Float64, false),
        Field::new("quote_volume", DataType::Float64, true),
        Field::new("trades", DataType::UInt64, true),
        Field::new("taker_buy_base", DataType::Float64, true),
        Field::new("taker_buy_quote", DataType::Float64, true),
        Field::new("volume_ccy", DataType::Float64, true),
    ]))
}

/// The schema of exported Parquet: time as timestamp(ms, UTC), the rest as in
/// [`candle_schema`].
pub(crate) fn parquet_schema() -> SchemaRef {
    let base = candle_schema();
    let mut fields: Vec<Field> = base.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields[0] = Field::new(
        "time",
        DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        false,
    );
    Arc::new(Schema::new(fields))
}
