//! A component's statements remembered by their text for the rest of its call, bounded: at
//! most [`MAX_ENTRIES`] texts and [`MAX_BYTES`] of them, the least recently used forgotten
//! first (the caller closes what it held on the server). Without a bound, a component running
//! thousands of distinct statements would keep each on the host, and prepared on the server,
//! until its call ended, whatever its `memory_mib`.

use hashlink::LinkedHashMap;

/// How many statements one cache keeps.
pub const MAX_ENTRIES: usize = 32;
/// How many bytes of statement text one cache keeps.
pub const MAX_BYTES: usize = 1 << 20;

/// Values by statement text, in order of use: the least recently used first.
pub struct StatementCache<V> {
    map: LinkedHashMap<String, V>,
    bytes: usize,
}

impl<V> Default for StatementCache<V> {
    fn default() -> Self {
        StatementCache {
            map: LinkedHashMap::new(),
            bytes: 0,
        }
    }
}

impl<V> StatementCache<V> {
    /// The value of `text`, now the most recently used.
    pub fn get(&mut self, text: &str) -> Option<&V> {
        self.map.to_back(text).map(|v| &*v)
    }

    pub fn contains_key(&self, text: &str) -> bool {
        self.map.contains_key(text)
    }

    /// Remembers `value` for `text` (a text longer than [`MAX_BYTES`] is not remembered and
    /// comes back); returns what was forgotten to keep the bounds.
    pub fn insert(&mut self, text: String, value: V) -> Vec<V> {
        if text.len() > MAX_BYTES {
            return vec![value];
        }
        let mut forgotten: Vec<V> = self.remove(&text).into_iter().collect();
        self.bytes += text.len();
        self.map.insert(text, value);
        while self.map.len() > MAX_ENTRIES || self.bytes > MAX_BYTES {
            let Some((oldest, value)) = self.map.pop_front() else {
                break;
            };
            self.bytes -= oldest.len();
            forgotten.push(value);
        }
        forgotten
    }

    /// Forgets `text`; returns its value.
    pub fn remove(&mut self, text: &str) -> Option<V> {
        let (text, value) = self.map.remove_entry(text)?;
        self.bytes -= text.len();
        Some(value)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.map.values()
    }

    pub fn clear(&mut self) {
        self.map.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_keeps_the_recent_statements_within_its_bounds() {
        let mut c = StatementCache::default();
        let mut forgotten = Vec::new();
        for i in 0..(3 * MAX_ENTRIES) {
            forgotten.extend(c.insert(format!("SELECT {i}"), i));
            // The first statement stays: it is used again each time.
            assert_eq!(c.get("SELECT 0"), Some(&0));
        }
        assert_eq!(c.values().count(), MAX_ENTRIES);
        assert_eq!(forgotten.len(), 2 * MAX_ENTRIES);
        assert!(!forgotten.contains(&0));
        assert_eq!(c.get("SELECT 1"), None);
        // By bytes: texts of 60 KB, fewer than MAX_ENTRIES of them.
        let mut c = StatementCache::default();
        let mut forgotten = 0;
        for i in 0..100 {
            forgotten += c.insert(format!("{i:060000}"), i).len();
        }
        let kept = c.values().count();
        assert_eq!(kept, MAX_BYTES / 60_000);
        assert_eq!(forgotten + kept, 100);
        assert!(c.bytes <= MAX_BYTES);
        // Too long to keep at all: handed back.
        assert_eq!(c.insert("x".repeat(MAX_BYTES + 1), 7), vec![7]);
        assert!(c.remove(&format!("{:060000}", 99)).is_some());
        c.clear();
        assert_eq!((c.values().count(), c.bytes), (0, 0));
    }
}
