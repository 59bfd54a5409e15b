//! A snapshot's form of the set: sorted `key:second` strings.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Seen;

impl Serialize for Seen {
    /// Sorted `key:second` strings, so equal sets serialise to equal bytes.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            self.sorted_entries()
                .iter()
                .map(|(k, sec)| format!("{k:032x}:{sec}")),
        )
    }
}

impl<'de> Deserialize<'de> for Seen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text: Vec<String> = Vec::deserialize(d)?;
        let mut entries = Vec::with_capacity(text.len());
        for entry in text {
            let (hex, second) = entry
                .split_once(':')
                .ok_or_else(|| serde::de::Error::custom("a seen entry is key:second"))?;
            let key = u128::from_str_radix(hex, 16).map_err(serde::de::Error::custom)?;
            let second: i64 = second.parse().map_err(serde::de::Error::custom)?;
            entries.push((key, second));
        }
        let mut seen = Seen::default();
        seen.extend_entries(entries);
        Ok(seen)
    }
}
