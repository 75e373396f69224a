//! `EXPLAIN QUERY PLAN` analysis.

use rusqlite::Connection;
use serde::Serialize;

use crate::{Error, Result};

/// The plan SQLite chose for a statement, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// The plan's lines, as `EXPLAIN QUERY PLAN` prints them.
    pub steps: Vec<String>,
    /// Tables read in full (`SCAN t` without an index).
    pub full_scans: Vec<String>,
    /// Whether SQLite sorts or groups in a temporary b-tree.
    pub temp_btree: bool,
}

impl Plan {
    /// Returns whether any step uses the primary key or an index.
    pub fn uses_index(&self) -> bool {
        self.steps.iter().any(|s| {
            s.contains("USING PRIMARY KEY")
                || s.contains("USING INDEX")
                || s.contains("USING COVERING INDEX")
        })
    }
}

/// Runs `EXPLAIN QUERY PLAN` on `sql` (parameters may stay unbound) and flags full scans
/// and temporary b-trees.
///
/// # Errors
/// [`Error::Query`] if SQLite cannot plan the statement.
pub fn analyze(conn: &Connection, sql: &str) -> Result<Plan> {
    let query_err = |source| Error::Query {
        sql: crate::normalize(sql),
        source,
    };
    let mut stmt = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .map_err(query_err)?;
    // Unbound parameters plan as NULL; `raw_query` skips rusqlite's parameter count check.
    let mut rows = stmt.raw_query();
    let mut steps = Vec::new();
    while let Some(row) = rows.next().map_err(query_err)? {
        steps.push(row.get::<_, String>(3).map_err(query_err)?);
    }
    let full_scans = steps
        .iter()
        .filter_map(|s| {
            let rest = s.strip_prefix("SCAN ")?;
            // "SCAN t USING COVERING INDEX i" walks an index, not the table.
            if rest.contains(" USING ") {
                return None;
            }
            Some(rest.split_whitespace().next().unwrap_or(rest).to_owned())
        })
        .collect();
    let temp_btree = steps.iter().any(|s| s.contains("TEMP B-TREE"));
    Ok(Plan {
        steps,
        full_scans,
        temp_btree,
    })
}
