//! A transform: splits `people.full_name` into the new `first_name` and `last_name` columns.
//! The first name is the first word; the last name is the rest, or empty.

use serde::Deserialize;
use strata_sdk::{Result, log, params, sql};

#[derive(Deserialize)]
struct Person {
    id: i64,
    full_name: String,
}

fn run() -> Result<()> {
    let mut names =
        sql::Writer::new("UPDATE people SET first_name = ?, last_name = ? WHERE id = ?");
    for person in sql::stream::<Person>("SELECT id, full_name FROM people", params![])? {
        let Person { id, full_name } = person?;
        let (first, last) = split(&full_name);
        names.push((first, last, id))?;
    }
    let changed = names.finish()?;
    log::info(format!("split the names of {changed} people"));
    Ok(())
}

/// Splits at the first run of whitespace.
fn split(full_name: &str) -> (&str, &str) {
    let full_name = full_name.trim();
    match full_name.split_once(char::is_whitespace) {
        Some((first, rest)) => (first, rest.trim_start()),
        None => (full_name, ""),
    }
}

strata_sdk::transform!(run);

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn splits_at_the_first_run_of_whitespace() {
        assert_eq!(split("Ada Lovelace"), ("Ada", "Lovelace"));
        assert_eq!(split("Gabriel  García Márquez"), ("Gabriel", "García Márquez"));
        assert_eq!(split("Zoë\t Brontë "), ("Zoë", "Brontë"));
        assert_eq!(split("  Søren"), ("Søren", ""));
        assert_eq!(split(""), ("", ""));
    }
}
