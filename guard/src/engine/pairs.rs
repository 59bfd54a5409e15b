//! Serialises a map as a list of `[key, value]` pairs, for maps whose keys are not
//! strings (scopes, optional group names) and so cannot be JSON object keys.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Writes the map as pairs in key order.
///
/// # Errors
/// Whatever the serializer reports.
pub fn serialize<K: Serialize, V: Serialize, S: Serializer>(
    map: &BTreeMap<K, V>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(map.iter())
}

/// [`serialize`] for a field that holds a reference to the map (a struct serialised
/// from borrowed fields).
///
/// # Errors
/// Whatever the serializer reports.
pub fn serialize_ref<K: Serialize, V: Serialize, S: Serializer>(
    map: &&BTreeMap<K, V>,
    s: S,
) -> Result<S::Ok, S::Error> {
    serialize(map, s)
}

/// Reads pairs back into a map.
///
/// # Errors
/// Whatever the deserializer reports.
pub fn deserialize<'de, K, V, D>(d: D) -> Result<BTreeMap<K, V>, D::Error>
where
    K: Deserialize<'de> + Ord,
    V: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
}
