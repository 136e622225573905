//! A check: every first and last name that is not empty starts with an uppercase letter, by
//! Unicode rules (`char::is_uppercase`), which SQLite's ASCII-only `upper()` cannot express:
//! "Élodie" passes, "élodie" does not.

use serde::Deserialize;
use strata_sdk::{Result, params, sql};

#[derive(Deserialize)]
struct Person {
    id: i64,
    first_name: Option<String>,
    last_name: Option<String>,
}

fn check() -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let people = "SELECT id, first_name, last_name FROM people";
    for person in sql::stream::<Person>(people, params![])? {
        let person = person?;
        for (what, name) in [("first", &person.first_name), ("last", &person.last_name)] {
            let name = name.as_deref().unwrap_or("");
            if !starts_with_a_capital(name) {
                problems.push(format!(
                    "people {}: {what} name '{name}' does not start with a capital letter",
                    person.id
                ));
            }
        }
    }
    Ok(problems)
}

/// True for an empty name too: only names that are there are checked.
fn starts_with_a_capital(name: &str) -> bool {
    name.chars().next().is_none_or(char::is_uppercase)
}

strata_sdk::check!(check);

#[cfg(test)]
mod tests {
    use super::starts_with_a_capital;

    #[test]
    fn capitals_by_unicode_rules() {
        for ok in ["Élodie", "Søren", "Zoë", "Łukasz", "Ñuño", "Ada", "", "Ωmega"] {
            assert!(starts_with_a_capital(ok), "{ok}");
        }
        for bad in ["élodie", "søren", "łukasz", "ñuño", "van", "1st", " Ada", "-"] {
            assert!(!starts_with_a_capital(bad), "{bad}");
        }
    }
}
