//! Recognising a Breakglass database before migrating it: a database that belongs to something
//! else is left alone, and one migrated by a newer build is refused rather than misread.

use sqlx::migrate::{MigrateError, Migrator};

use crate::StoreError;

/// The table where sqlx records applied migrations.
pub(crate) const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// Reads the applied migrations (run only when [`MIGRATIONS_TABLE`] exists).
pub(crate) const APPLIED_QUERY: &str =
    "SELECT version, checksum FROM _sqlx_migrations WHERE success ORDER BY version";

/// One applied migration.
#[derive(sqlx::FromRow)]
pub(crate) struct Applied {
    version: i64,
    checksum: Vec<u8>,
}

/// Decides whether the database, found with `tables` (user tables of the schema) and `applied`
/// (its migration record, if it has one), may be migrated by `migrator`.
pub(crate) fn check(
    migrator: &Migrator,
    location: &str,
    tables: &[String],
    applied: Option<&[Applied]>,
) -> Result<(), StoreError> {
    let not_breakglass = |reason: String| StoreError::NotBreakglass {
        location: location.to_owned(),
        reason,
    };
    let Some(applied) = applied else {
        return match tables.first() {
            None => Ok(()),
            Some(_) => Err(not_breakglass(format!(
                "it already holds other tables ({}) and no Breakglass schema",
                preview(tables)
            ))),
        };
    };
    let Some(first) = migrator.iter().next() else {
        return Ok(());
    };
    let ours = applied
        .iter()
        .any(|a| a.version == first.version && a.checksum == first.checksum.as_ref());
    // A first migration interrupted after sqlx created its table leaves that table alone, empty.
    let interrupted_first_run = applied.is_empty() && tables.len() == 1;
    if !(ours || interrupted_first_run) {
        return Err(not_breakglass(
            "its migration history is not Breakglass's (another application uses it)".to_owned(),
        ));
    }
    let supported = migrator.iter().map(|m| m.version).max().unwrap_or(0);
    if let Some(unknown) = applied
        .iter()
        .map(|a| a.version)
        .filter(|v| !migrator.version_exists(*v))
        .max()
    {
        return Err(StoreError::NewerSchema {
            location: location.to_owned(),
            found: unknown,
            supported,
        });
    }
    Ok(())
}

/// Whether every migration `migrator` knows is applied, unchanged: then there is nothing to run,
/// and an app whose database role may not change the schema (team mode) opens the log as is.
pub(crate) fn up_to_date(migrator: &Migrator, applied: &[Applied]) -> bool {
    migrator.iter().all(|m| {
        applied
            .iter()
            .any(|a| a.version == m.version && a.checksum == m.checksum.as_ref())
    })
}

fn preview(tables: &[String]) -> String {
    let mut shown: Vec<&str> = tables.iter().take(3).map(String::as_str).collect();
    if tables.len() > 3 {
        shown.push("…");
    }
    shown.join(", ")
}

pub(crate) fn map_migrate_error(
    migrator: &Migrator,
    location: &str,
    source: MigrateError,
) -> StoreError {
    match source {
        MigrateError::VersionMissing(found) => StoreError::NewerSchema {
            location: location.to_owned(),
            found,
            supported: migrator.iter().map(|m| m.version).max().unwrap_or(0),
        },
        source => StoreError::Migration {
            location: location.to_owned(),
            source,
        },
    }
}
