//! Random container names in Docker's `adjective_surname` style.

use rand::seq::IndexedRandom;

const ADJECTIVES: &[&str] = &[
    "admiring",
    "brave",
    "clever",
    "dazzling",
    "eager",
    "festive",
    "gallant",
    "happy",
    "inspiring",
    "jolly",
    "keen",
    "lucid",
    "modest",
    "nifty",
    "optimistic",
    "peaceful",
    "quirky",
    "relaxed",
    "serene",
    "tender",
    "upbeat",
    "vibrant",
    "wizardly",
    "zealous",
    "bold",
    "calm",
    "elastic",
    "focused",
    "gracious",
    "hopeful",
    "kind",
    "loving",
];

const SURNAMES: &[&str] = &[
    "archimedes",
    "babbage",
    "curie",
    "darwin",
    "euclid",
    "faraday",
    "gauss",
    "hopper",
    "hypatia",
    "johnson",
    "kepler",
    "lovelace",
    "meitner",
    "newton",
    "noether",
    "pascal",
    "ritchie",
    "shannon",
    "thompson",
    "turing",
    "volta",
    "wozniak",
    "yonath",
    "zuse",
    "bohr",
    "dijkstra",
    "fermat",
    "galileo",
    "hamilton",
    "knuth",
    "lamport",
    "mccarthy",
];

pub fn random_name() -> String {
    let mut rng = rand::rng();
    format!(
        "{}_{}",
        ADJECTIVES.choose(&mut rng).unwrap(),
        SURNAMES.choose(&mut rng).unwrap()
    )
}

/// Docker's rule for user-chosen names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        assert!(super::valid_name("web-1"));
        assert!(!super::valid_name("-x"));
        assert!(!super::valid_name("a"));
        assert!(!super::valid_name("a b"));
        assert!(super::valid_name(&super::random_name()));
    }
}
