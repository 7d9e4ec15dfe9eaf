//! Holders for bearer secrets: zeroized on drop, redacted in `Debug`, never `Display`.
//!
//! Every way to read one is named `expose_secret`, so a reviewer can find each place a token
//! leaves its holder. Copies made on the way to and from the network (request bodies, parsed
//! responses) are short-lived and not zeroized; the holders here are what callers keep.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

macro_rules! secret_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(SecretString);

        impl $name {
            /// Wraps a secret (for instance one read back from the keyring).
            pub fn new(secret: impl Into<String>) -> Self {
                Self(SecretString::from(secret.into()))
            }

            /// The secret itself, to store it or send it to its issuer. Never log it.
            pub fn expose_secret(&self) -> &str {
                self.0.expose_secret()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }
    };
}

secret_type!(
    /// An OAuth 2.0 access token.
    AccessToken
);
secret_type!(
    /// An OAuth 2.0 refresh token: long-lived, stored in the OS keyring only.
    RefreshToken
);
secret_type!(
    /// A confidential client's secret.
    ClientSecret
);
secret_type!(
    /// A compact-serialised OpenID Connect ID token.
    ///
    /// Unlike access and refresh tokens it is evidence, recorded in enrolment events so that
    /// verifiers can re-check it; it is still redacted in `Debug` so it never lands in logs by
    /// accident.
    IdToken
);

/// A token that can be revoked (RFC 7009) or introspected (RFC 7662): the hint tells the
/// provider which kind it is. Implemented by [`AccessToken`] and [`RefreshToken`] only.
pub trait IssuedToken: sealed::Sealed {
    /// The `token_type_hint` value for this kind of token.
    const TYPE_HINT: &'static str;

    /// The token itself.
    fn expose_secret(&self) -> &str;
}

impl IssuedToken for AccessToken {
    const TYPE_HINT: &'static str = "access_token";

    fn expose_secret(&self) -> &str {
        AccessToken::expose_secret(self)
    }
}

impl IssuedToken for RefreshToken {
    const TYPE_HINT: &'static str = "refresh_token";

    fn expose_secret(&self) -> &str {
        RefreshToken::expose_secret(self)
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::AccessToken {}
    impl Sealed for super::RefreshToken {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let secret = "eyJhbGciOiJSUzI1NiJ9.secret-material.sig";
        let shown = format!(
            "{:?} {:?} {:?} {:?}",
            AccessToken::new(secret),
            RefreshToken::new(secret),
            ClientSecret::new(secret),
            IdToken::new(secret)
        );
        assert!(
            !shown.contains("secret-material"),
            "Debug must redact: {shown}"
        );
        assert_eq!(
            shown,
            "AccessToken([redacted]) RefreshToken([redacted]) ClientSecret([redacted]) \
             IdToken([redacted])"
        );
    }

    #[test]
    fn expose_secret_gives_the_value_back_for_storage() {
        let token = RefreshToken::new("rt-123");
        assert_eq!(token.expose_secret(), "rt-123");
        assert_eq!(<RefreshToken as IssuedToken>::TYPE_HINT, "refresh_token");
        assert_eq!(<AccessToken as IssuedToken>::TYPE_HINT, "access_token");
    }
}
