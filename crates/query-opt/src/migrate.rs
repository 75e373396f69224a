//! Versioned schemas: a list of migrations, each moving `PRAGMA user_version` up by one.
//! The crate that owns the tables writes them; this runs them.

use rusqlite::{Connection, OptionalExtension};

use crate::{Error, Result};

/// A database's schema as the migrations that build it: version N is the first N applied,
/// in one transaction, and a file at a version newer than the list is refused.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    migrations: &'static [&'static str],
}

impl Schema {
    /// The schema the migrations build, oldest first.
    pub const fn new(migrations: &'static [&'static str]) -> Self {
        Self { migrations }
    }

    /// The version this build creates and understands.
    pub const fn version(&self) -> i64 {
        self.migrations.len() as i64
    }

    /// Brings the schema to [`Schema::version`] inside one transaction ([`crate::Db::open`]
    /// does this; tests of a schema's migrations call it on a connection of their own).
    ///
    /// # Errors
    /// [`Error::SchemaTooNew`] for a file of a newer version, [`Error::Unusable`] if a
    /// migration fails (the file is then unchanged).
    pub fn migrate(&self, conn: &mut Connection) -> Result<()> {
        let unusable = |e: rusqlite::Error| Error::Unusable(e.to_string());
        let found: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(unusable)?;
        let supported = self.version();
        if found > supported {
            return Err(Error::SchemaTooNew { found, supported });
        }
        if found == supported {
            return Ok(());
        }
        // A migration may rebuild a table others reference (SQLite's documented way to
        // change a constraint: create, copy, drop, rename). With foreign keys enforced,
        // dropping the old table fails while rows point at it, so they are off while the
        // migrations run (the pragma is a no-op inside a transaction) and checked before
        // the commit; the connection's setting is restored either way.
        let enforced: bool = conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .map_err(unusable)?;
        conn.pragma_update(None, "foreign_keys", false)
            .map_err(unusable)?;
        let mut run = || -> Result<()> {
            let tx = conn.transaction().map_err(unusable)?;
            for sql in &self.migrations[usize::try_from(found.max(0)).unwrap_or(0)..] {
                tx.execute_batch(sql).map_err(unusable)?;
            }
            let dangling: Option<String> = tx
                .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
                .optional()
                .map_err(unusable)?;
            if let Some(table) = dangling {
                return Err(Error::Unusable(format!(
                    "after the migrations, rows of `{table}` refer to rows that do not exist"
                )));
            }
            tx.pragma_update(None, "user_version", supported)
                .map_err(unusable)?;
            tx.commit().map_err(unusable)
        };
        let result = run();
        conn.pragma_update(None, "foreign_keys", enforced)
            .map_err(unusable)?;
        result
    }
}
