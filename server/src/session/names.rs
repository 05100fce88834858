//! Human-readable session names: they become branch names (`tether/<name>`) and folder names,
//! so they are kept to a safe alphabet.

/// A short name from the first words of a prompt: "Fix the login bug!" → `fix-the-login-bug`.
pub fn slug_from_prompt(prompt: &str) -> String {
    let mut slug = String::new();
    for word in prompt
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty())
        .take(5)
    {
        if slug.len() + word.len() + 1 > 40 {
            break;
        }
        if !slug.is_empty() {
            slug.push('-');
        }
        slug.push_str(&word.to_ascii_lowercase());
    }
    if slug.is_empty() {
        "session".to_owned()
    } else {
        slug
    }
}

/// Checks a name the user chose: lowercase letters, digits, `-` and `_`, 1 to 64 characters,
/// starting with a letter or digit.
/// A session's (or task's) title: the first line of its prompt with text, at most 80
/// characters.
pub fn title_of(prompt: &str) -> String {
    prompt
        .lines()
        .find(|line| !line.trim().is_empty())
        .unwrap_or_default()
        .trim()
        .chars()
        .take(80)
        .collect()
}

pub fn validate_session_name(name: &str) -> Result<(), String> {
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    let starts_well = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if name.is_empty() || name.len() > 64 || !valid_chars || !starts_well {
        return Err(format!(
            "session name {name:?} is not valid: use 1 to 64 lowercase letters, digits, '-' or '_', starting with a letter or digit"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_short_and_safe() {
        assert_eq!(slug_from_prompt("Fix the login bug!"), "fix-the-login-bug");
        assert_eq!(slug_from_prompt("  ../../etc/passwd  "), "etc-passwd");
        assert_eq!(slug_from_prompt("日本語"), "session");
        assert!(slug_from_prompt(&"word ".repeat(100)).len() <= 40);
    }

    #[test]
    fn names_are_validated() {
        assert!(validate_session_name("fix-login_2").is_ok());
        for bad in ["", "-x", "Fix", "a/b", "a..b", "a b", &"x".repeat(65)] {
            assert!(validate_session_name(bad).is_err(), "{bad:?}");
        }
    }
}
