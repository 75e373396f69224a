"""A freqtrade strategy that trades nothing and logs every candle it is given.

Each time freqtrade hands it a pair's dataframe (once per new candle, as
process_only_new_candles does), the last three candles are appended as JSON lines to
$CANDLE_LOG with the wall time, so `cargo xtask check-freqtrade-live` can compare them
with the exchange's final candles and measure how late a new candle arrived.
"""

import json
import os
import time

from freqtrade.strategy import IStrategy


class LogCandles(IStrategy):
    INTERFACE_VERSION = 3
    timeframe = "1m"
    minimal_roi = {"0": 100}
    stoploss = -0.99
    startup_candle_count = 20
    process_only_new_candles = True

    def populate_indicators(self, dataframe, metadata):
        now_ms = int(time.time() * 1000)
        with open(os.environ["CANDLE_LOG"], "a") as f:
            for r in dataframe.tail(3).itertuples():
                f.write(
                    json.dumps(
                        {
                            "pair": metadata["pair"],
                            "t": int(r.date.timestamp() * 1000),
                            "o": r.open,
                            "h": r.high,
                            "l": r.low,
                            "c": r.close,
                            "v": r.volume,
                            "at": now_ms,
                        }
                    )
                    + "\n"
                )
        return dataframe

    def populate_entry_trend(self, dataframe, metadata):
        dataframe["enter_long"] = 0
        return dataframe

    def populate_exit_trend(self, dataframe, metadata):
        dataframe["exit_long"] = 0
        return dataframe
