//! `exchangeInfo` built from the store when there is no upstream: the fields ccxt's
//! `binance` and `binanceusdm` read.

use market_cache::{Exchange, Kind};
use serde_json::{json, Value};

use super::errors::illegal;
use crate::query::Params;
use crate::state::App;
use crate::{Error, Result};

/// Binance's exchangeInfo of the stored markets, spot or futures.
pub(crate) async fn local_exchange_info(app: &App, p: &Params, futures: bool) -> Result<Value> {
    let markets = app.read.markets().await?;
    let wanted: Option<Vec<String>> = match (p.get("symbol"), p.get("symbols")) {
        (Some(s), _) => Some(vec![s.to_ascii_uppercase()]),
        (None, Some(list)) => Some(
            serde_json::from_str::<Vec<String>>(list)
                .map_err(|_| {
                    illegal(
                        "symbols",
                        "^\\[(\"[A-Z0-9-_.]{1,20}\"(,\"[A-Z0-9-_.]{1,20}\"){0,}){0,1}\\]$",
                    )
                })?
                .into_iter()
                .map(|s| s.to_ascii_uppercase())
                .collect(),
        ),
        _ => None,
    };
    let mut symbols: Vec<Value> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    // Futures are listed by their trade series (a mark-price series alone is no market).
    let listed = if futures { Kind::Futures } else { Kind::Spot };
    for m in markets
        .iter()
        .filter(|m| m.kind == listed && m.exchange == Exchange::Binance)
    {
        if seen.contains(&m.symbol.as_str()) {
            continue;
        }
        if wanted.as_ref().is_some_and(|w| !w.contains(&m.symbol)) {
            continue;
        }
        seen.push(&m.symbol);
        symbols.push(if futures {
            futures_symbol_info(m)
        } else {
            symbol_info(m)
        });
    }
    if let Some(w) = &wanted {
        if w.iter().any(|s| !seen.contains(&s.as_str())) {
            return Err(Error::UnknownSymbol(w.join(",")));
        }
    }
    Ok(json!({
        "timezone": "UTC",
        "serverTime": app.read.now(),
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
            {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000}
        ],
        "exchangeFilters": [],
        "symbols": symbols,
    }))
}

/// A USD-M perpetual as Binance's futures exchangeInfo describes one, from what the store
/// knows (the fields ccxt's binanceusdm reads).
fn futures_symbol_info(m: &market_cache::Market) -> Value {
    let (base, quote) = match (&m.base, &m.quote) {
        (Some(b), Some(q)) => (b.clone(), q.clone()),
        _ => (m.symbol.clone(), "UNKNOWN".to_owned()),
    };
    let places = usize::from(m.price_precision.min(8));
    let tick = if places == 0 {
        "1".to_owned()
    } else {
        format!("0.{}1", "0".repeat(places - 1))
    };
    json!({
        "symbol": m.symbol,
        "pair": m.symbol,
        "contractType": "PERPETUAL",
        "deliveryDate": 4_133_404_800_000i64,
        "onboardDate": m.first_time.unwrap_or(0),
        "status": "TRADING",
        "baseAsset": base,
        "quoteAsset": quote,
        "marginAsset": quote,
        "pricePrecision": m.price_precision,
        "quantityPrecision": 3,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "1000000", "tickSize": tick},
            {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "1000000", "stepSize": "0.001"},
            {"filterType": "MARKET_LOT_SIZE", "minQty": "0.001", "maxQty": "1000000", "stepSize": "0.001"},
            {"filterType": "MIN_NOTIONAL", "notional": "5"}
        ],
        "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
    })
}

/// A spot market entry as Binance describes one, from what the store knows.
fn symbol_info(m: &market_cache::Market) -> Value {
    let (base, quote) = match (&m.base, &m.quote) {
        (Some(b), Some(q)) => (b.clone(), q.clone()),
        // Unknown split: the whole name as base keeps ccxt's symbol unique.
        _ => (m.symbol.clone(), "UNKNOWN".to_owned()),
    };
    let places = usize::from(m.price_precision.min(8));
    let tick = if places == 0 {
        "1.00000000".to_owned()
    } else {
        format!("0.{}1{}", "0".repeat(places - 1), "0".repeat(8 - places))
    };
    json!({
        "symbol": m.symbol,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": true,
        "ocoAllowed": true,
        "otoAllowed": false,
        "quoteOrderQtyMarketAllowed": true,
        "allowTrailingStop": true,
        "cancelReplaceAllowed": true,
        "isSpotTradingAllowed": true,
        "isMarginTradingAllowed": false,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "1000000.00000000", "tickSize": tick},
            {"filterType": "LOT_SIZE", "minQty": "0.00000001", "maxQty": "9000000.00000000", "stepSize": "0.00000001"},
            {"filterType": "NOTIONAL", "minNotional": "0.00000000", "applyMinToMarket": false, "maxNotional": "9000000.00000000", "applyMaxToMarket": false, "avgPriceMins": 5}
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    })
}
