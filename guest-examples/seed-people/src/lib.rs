//! A seed: `count` people with names drawn from fixed lists, many of them not ASCII, by a
//! small deterministic generator: the same parameters on the same database give the same rows.
//!
//! Parameters (the `"$seed"` entry of the `data.json` beside the component):
//! `{"count": 1000, "seed": 42}`, both optional (100 people, seed 0). Ids continue after the
//! largest one in `people`; emails are `first.last.<id>@example.test`, lowercased and folded
//! to ASCII.

use serde::Deserialize;
use strata_sdk::{Result, log, params, sql};

const FIRST_NAMES: &[&str] = &[
    "Ada", "Alan", "Grace", "Élodie", "Søren", "Zoë", "Łukasz", "Ñuño", "Björn", "Siobhán",
    "Jürgen", "Thérèse", "Øystein", "Chloé", "Mårten", "Işıl", "Ólafur", "Noémie", "Ümit",
    "Ásgeir", "Çağla", "Radhika", "Kwame", "Mei",
];

const LAST_NAMES: &[&str] = &[
    "Lovelace", "Turing", "Hopper", "Brontë", "Kierkegaard", "Dvořák", "Wałęsa", "Müller",
    "Ørsted", "Gödel", "Šimková", "Núñez", "García Márquez", "Lloyd Webber", "Çelik",
    "Þórsdóttir", "Groß", "Nakamura", "Okonkwo", "Ó Briain",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default = "default_count")]
    count: u32,
    #[serde(default)]
    seed: u64,
}

fn default_count() -> u32 {
    100
}

fn seed(Params { count, seed }: Params) -> Result<()> {
    let last_id: i64 = sql::query_one("SELECT coalesce(max(id), 0) FROM people", params![])?;
    let mut rng = SplitMix64(seed);
    let mut people =
        sql::Writer::new("INSERT INTO people (id, full_name, email) VALUES (?, ?, ?)");
    for id in last_id + 1..=last_id + i64::from(count) {
        let first = rng.pick(FIRST_NAMES);
        let last = rng.pick(LAST_NAMES);
        let email = format!("{}.{}.{id}@example.test", ascii_fold(first), ascii_fold(last));
        people.push((id, format!("{first} {last}"), email))?;
    }
    let added = people.finish()?;
    log::info(format!("added {added} people after id {last_id} (seed {seed})"));
    Ok(())
}

strata_sdk::seed!(seed);

/// The splitmix64 generator: tiny, fast, and the same sequence everywhere for a seed.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// An element, uniformly (Lemire's multiply-shift, without the tiny rejection step).
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        let i = (u128::from(self.next()) * from.len() as u128) >> 64;
        from[i as usize]
    }
}

/// Lowercase ASCII for an email address: accents dropped, spaces as `-`.
fn ascii_fold(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars().flat_map(char::to_lowercase) {
        let folded = match c {
            'a'..='z' | '0'..='9' | '-' => {
                out.push(c);
                continue;
            }
            c if c.is_whitespace() => "-",
            'á' | 'à' | 'â' | 'ä' | 'å' | 'ã' | 'ą' => "a",
            'é' | 'è' | 'ê' | 'ë' | 'ę' | 'ě' => "e",
            'í' | 'ì' | 'î' | 'ï' | 'ı' => "i",
            'ó' | 'ò' | 'ô' | 'ö' | 'õ' | 'ø' | 'ő' => "o",
            'ú' | 'ù' | 'û' | 'ü' | 'ů' | 'ű' => "u",
            'ý' | 'ÿ' => "y",
            'ç' | 'č' | 'ć' => "c",
            'ğ' => "g",
            'ł' => "l",
            'ñ' | 'ń' | 'ň' => "n",
            'ř' => "r",
            'ş' | 'š' | 'ś' => "s",
            'ž' | 'ź' | 'ż' => "z",
            'ð' | 'đ' => "d",
            'þ' => "th",
            'ß' => "ss",
            'æ' => "ae",
            'œ' => "oe",
            _ => "",
        };
        out.push_str(folded);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_names() {
        let names = |seed| {
            let mut rng = SplitMix64(seed);
            (0..50).map(|_| rng.pick(FIRST_NAMES)).collect::<Vec<_>>()
        };
        assert_eq!(names(7), names(7));
        assert_ne!(names(7), names(8));
        // The reference output of splitmix64 seeded with 0.
        let mut rng = SplitMix64(0);
        assert_eq!(rng.next(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(rng.next(), 0x6e78_9e6a_a1b9_65f4);
    }

    #[test]
    fn every_name_folds_to_a_nonempty_ascii_email_part() {
        for name in FIRST_NAMES.iter().chain(LAST_NAMES) {
            let folded = ascii_fold(name);
            assert!(!folded.is_empty(), "{name}");
            assert!(
                folded.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{name} -> {folded}"
            );
        }
        assert_eq!(ascii_fold("Łukasz"), "lukasz");
        assert_eq!(ascii_fold("García Márquez"), "garcia-marquez");
        assert_eq!(ascii_fold("Þórsdóttir"), "thorsdottir");
        assert_eq!(ascii_fold("Groß"), "gross");
        assert_eq!(ascii_fold("Işıl"), "isil");
    }

    #[test]
    fn names_start_with_a_capital() {
        for name in FIRST_NAMES.iter().chain(LAST_NAMES) {
            for word in name.split_whitespace() {
                assert!(word.chars().next().is_some_and(char::is_uppercase), "{name}");
            }
        }
    }
}
