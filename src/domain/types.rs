//! Parse-don't-validate newtypes: the constructor is the only way in.

use crate::error::AppError;

/// A normalised email address (trimmed, lower-cased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, AppError> {
        let bad = || AppError::bad_input("email", "enter a valid email address");
        let email = raw.trim().to_lowercase();
        if email.is_empty()
            || email.len() > 254
            || email.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(bad());
        }
        let (local, domain) = email.split_once('@').ok_or_else(bad)?;
        if local.is_empty()
            || local.len() > 64
            || domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
            || domain.starts_with('-')
        {
            return Err(bad());
        }
        Ok(Email(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password that meets the policy of `api.md`: 8..128 characters, an
/// upper-case letter, a lower-case letter, a digit, and not one of the
/// 30,000 most common passwords (the list zxcvbn carries).
#[derive(Clone)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

pub const PASSWORD_MIN_CHARS: usize = 8;
pub const PASSWORD_MAX_CHARS: usize = 128;

impl Password {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, AppError> {
        let chars = raw.chars().count();
        if chars < PASSWORD_MIN_CHARS {
            return Err(AppError::bad_input(
                field,
                "password must be at least 8 characters",
            ));
        }
        if chars > PASSWORD_MAX_CHARS {
            return Err(AppError::bad_input(
                field,
                "password must be at most 128 characters",
            ));
        }
        if !raw.chars().any(char::is_uppercase) {
            return Err(AppError::bad_input(
                field,
                "password needs an upper-case letter",
            ));
        }
        if !raw.chars().any(char::is_lowercase) {
            return Err(AppError::bad_input(
                field,
                "password needs a lower-case letter",
            ));
        }
        if !raw.chars().any(|c| c.is_ascii_digit()) {
            return Err(AppError::bad_input(field, "password needs a digit"));
        }
        if is_common_password(raw) {
            return Err(AppError::bad_input(
                field,
                "this password is too common; choose another",
            ));
        }
        Ok(Password(raw.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// True when the whole password (in any letter case, or with common
/// letter-for-symbol swaps) is one entry of zxcvbn's list of common
/// passwords.
pub fn is_common_password(raw: &str) -> bool {
    use zxcvbn::matching::patterns::MatchPattern;
    let entropy = zxcvbn::zxcvbn(raw, &[]);
    let len = raw.chars().count();
    entropy.sequence().iter().any(|m| {
        m.i == 0
            && m.j + 1 == len
            && matches!(&m.pattern, MatchPattern::Dictionary(d)
                // zxcvbn does not export the dictionary enum's path; its Debug name is stable.
                if format!("{:?}", d.dictionary_name) == "Passwords" && !d.reversed)
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Consumer,
    Coach,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Consumer => "CONSUMER",
            Role::Coach => "COACH",
            Role::Admin => "ADMIN",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "CONSUMER" => Some(Role::Consumer),
            "COACH" => Some(Role::Coach),
            "ADMIN" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// A display name: 1..100 characters after trimming, no control characters.
pub fn parse_name(field: &'static str, raw: &str) -> Result<String, AppError> {
    let name = raw.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > 100 {
        return Err(AppError::bad_input(
            field,
            "name must be 1 to 100 characters",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(AppError::bad_input(
            field,
            "name must not contain control characters",
        ));
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            Email::parse("  Ana@Example.COM ").unwrap().as_str(),
            "ana@example.com"
        );
        for bad in [
            "",
            "ana",
            "ana@",
            "@x.com",
            "a b@x.com",
            "ana@x",
            "a@@x.com",
            "a@x..com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn password_rules() {
        assert!(Password::parse("p", "Sh0rt").is_err());
        assert!(Password::parse("p", &format!("Aa1{}", "x".repeat(126))).is_err());
        assert!(Password::parse("p", "alllower123").is_err());
        assert!(Password::parse("p", "ALLUPPER123").is_err());
        assert!(Password::parse("p", "NoDigitsHere").is_err());
        assert!(Password::parse("p", "Password1").is_err(), "common");
        assert!(Password::parse("p", "Qwerty123").is_err(), "common");
        assert!(Password::parse("p", "Tangerine-Koala-42").is_ok());
    }

    #[test]
    fn roles_round_trip() {
        for r in [Role::Consumer, Role::Coach, Role::Admin] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("admin"), None);
    }
}
