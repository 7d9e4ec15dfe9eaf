//! Where a log lives: parsing `Store::open`'s argument, and showing it without secrets.

use std::path::PathBuf;

use crate::StoreError;

/// A parsed `Store::open` location.
pub(crate) enum Location {
    /// A SQLite file, given as a path or a `sqlite:` URL.
    Sqlite { url: Option<String>, path: PathBuf },
    /// A PostgreSQL URL.
    Postgres { url: String },
}

impl Location {
    pub(crate) fn parse(location: &str) -> Result<Location, StoreError> {
        let invalid = |reason: &str| StoreError::InvalidLocation {
            location: redact(location),
            reason: reason.to_owned(),
        };
        if location.trim().is_empty() {
            return Err(invalid("it is empty"));
        }
        let lower = location.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            return Ok(Location::Postgres {
                url: location.to_owned(),
            });
        }
        if lower.starts_with("sqlite:") {
            let rest = &location["sqlite:".len()..];
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            let path = rest.split('?').next().unwrap_or_default();
            if path.is_empty() || path == ":memory:" || lower.contains("mode=memory") {
                return Err(invalid(
                    "an in-memory SQLite database is not durable; give a file path",
                ));
            }
            return Ok(Location::Sqlite {
                url: Some(location.to_owned()),
                path: PathBuf::from(path),
            });
        }
        if let Some((scheme, _)) = location.split_once("://") {
            if !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            {
                return Err(invalid(&format!(
                    "unsupported scheme {scheme:?}; use a file path, sqlite://PATH or postgres://…"
                )));
            }
        }
        Ok(Location::Sqlite {
            url: None,
            path: PathBuf::from(location),
        })
    }
}

/// `location` with any password (in the userinfo or a `password=` query parameter) replaced by
/// `***`. A URL that cannot be parsed is reduced to its scheme, since it cannot be redacted safely.
pub(crate) fn redact(location: &str) -> String {
    if !location.contains("://") {
        return location.to_owned();
    }
    let Ok(mut url) = url::Url::parse(location) else {
        let scheme = location.split("://").next().unwrap_or_default();
        return format!("{scheme}://<unparseable URL>");
    };
    if url.password().is_some() {
        // Only fails for URLs that cannot have credentials, which have no password to hide.
        let _ = url.set_password(Some("***"));
    }
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let secret = k.to_ascii_lowercase().contains("password");
                (
                    k.into_owned(),
                    if secret {
                        "***".to_owned()
                    } else {
                        v.into_owned()
                    },
                )
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_passwords_in_userinfo_and_query() {
        let shown = redact("postgres://alice:hunter2@db.example:5432/log?sslmode=require");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("alice:***@db.example"), "{shown}");
        assert!(shown.contains("sslmode=require"), "{shown}");

        let shown = redact("postgres://db.example/log?user=bob&password=hunter2");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("user=bob"), "{shown}");

        let shown = redact("postgres://alice:hun[ter2@[bad");
        assert!(
            !shown.contains("hun"),
            "an unparseable URL is not echoed: {shown}"
        );

        assert_eq!(
            redact("/var/lib/breakglass/log.db"),
            "/var/lib/breakglass/log.db"
        );
    }

    #[test]
    fn parse_tells_backends_apart() {
        assert!(matches!(
            Location::parse("postgresql://h/db"),
            Ok(Location::Postgres { .. })
        ));
        assert!(matches!(
            Location::parse("POSTGRES://h/db"),
            Ok(Location::Postgres { .. })
        ));
        assert!(matches!(
            Location::parse("sqlite:///tmp/x.db"),
            Ok(Location::Sqlite { path, .. }) if path == std::path::Path::new("/tmp/x.db")
        ));
        assert!(matches!(
            Location::parse("relative/x.db"),
            Ok(Location::Sqlite { url: None, .. })
        ));
        assert!(matches!(
            Location::parse("sqlite::memory:"),
            Err(StoreError::InvalidLocation { .. })
        ));
        assert!(matches!(
            Location::parse("mysql://u:p@h/db"),
            Err(StoreError::InvalidLocation { location, .. }) if !location.contains(":p@")
        ));
        assert!(matches!(
            Location::parse(""),
            Err(StoreError::InvalidLocation { .. })
        ));
    }
}
