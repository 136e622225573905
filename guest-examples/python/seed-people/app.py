"""A seed: inserts `count` people (default 100) drawn by a splitmix64 generator from `seed`
(default 0), with non-ASCII names; ids continue after max(id); emails
`first.last.<id>@example.test`, lowercased and folded to ASCII. The same rows as the Rust
example (../../seed-people) for the same parameters."""

from typing import Any, Dict, List

from strata_sdk import Error, log, seed, sql

FIRST_NAMES = [
    "Ada", "Alan", "Grace", "Élodie", "Søren", "Zoë", "Łukasz", "Ñuño", "Björn", "Siobhán",
    "Jürgen", "Thérèse", "Øystein", "Chloé", "Mårten", "Işıl", "Ólafur", "Noémie", "Ümit",
    "Ásgeir", "Çağla", "Radhika", "Kwame", "Mei",
]  # fmt: skip

LAST_NAMES = [
    "Lovelace", "Turing", "Hopper", "Brontë", "Kierkegaard", "Dvořák", "Wałęsa", "Müller",
    "Ørsted", "Gödel", "Šimková", "Núñez", "García Márquez", "Lloyd Webber", "Çelik",
    "Þórsdóttir", "Groß", "Nakamura", "Okonkwo", "Ó Briain",
]  # fmt: skip

MASK = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed: int) -> None:
        self.state = seed & MASK

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def pick(self, names: List[str]) -> str:
        return names[(self.next() * len(names)) >> 64]


FOLD = {}
for letters, ascii in [
    ("áàâäåãą", "a"), ("éèêëęě", "e"), ("íìîïı", "i"), ("óòôöõøő", "o"), ("úùûüůű", "u"),
    ("ýÿ", "y"), ("çčć", "c"), ("ğ", "g"), ("ł", "l"), ("ñńň", "n"), ("ř", "r"), ("şšś", "s"),
    ("žźż", "z"), ("ðđ", "d"), ("þ", "th"), ("ß", "ss"), ("æ", "ae"), ("œ", "oe"),
]:  # fmt: skip
    for letter in letters:
        FOLD[letter] = ascii


def ascii_fold(name: str) -> str:
    out = []
    for c in name.lower():
        if "a" <= c <= "z" or "0" <= c <= "9" or c == "-":
            out.append(c)
        elif c.isspace():
            out.append("-")
        else:
            out.append(FOLD.get(c, ""))
    return "".join(out)


@seed
def generate(params: Dict[str, Any]) -> None:
    unknown = set(params) - {"count", "seed"}
    if unknown:
        raise Error(f'unknown "$seed" parameters {sorted(unknown)}: expected count and seed')
    count = int(params.get("count", 100))
    seed_value = int(params.get("seed", 0))
    (last_id,) = sql.query_one("SELECT coalesce(max(id), 0) FROM people")
    rng = SplitMix64(seed_value)
    people = sql.Writer("INSERT INTO people (id, full_name, email) VALUES (?, ?, ?)")
    for id in range(last_id + 1, last_id + count + 1):
        first = rng.pick(FIRST_NAMES)
        last = rng.pick(LAST_NAMES)
        email = f"{ascii_fold(first)}.{ascii_fold(last)}.{id}@example.test"
        people.push((id, f"{first} {last}", email))
    added = people.finish()
    log.info(f"added {added} people after id {last_id} (seed {seed_value})")
