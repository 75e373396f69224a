//! Versioned schemas: a list of migrations, each moving `PRAGMA user_version` up by one.
//! The crate that owns the tables writes them; this runs them.

use rusqlite::Connection;

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
        let tx = conn.transaction().map_err(unusable)?;
        for sql in &self.migrations[usize::try_from(found.max(0)).unwrap_or(0)..] {
            tx.execute_batch(sql).map_err(unusable)?;
        }
        tx.pragma_update(None, "user_version", supported)
            .map_err(unusable)?;
        tx.commit().map_err(unusable)
    }
}
