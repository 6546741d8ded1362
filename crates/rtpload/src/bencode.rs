//! Just enough bencode for rtpengine's "ng" control protocol: dictionaries of byte strings,
//! integers and lists.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    /// Keys in the order given; [`encode`] sorts them as bencode requires.
    Dict(Vec<(Vec<u8>, Value)>),
}

impl Value {
    pub fn str(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec())
    }

    pub fn dict<'a>(pairs: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
        Value::Dict(
            pairs
                .into_iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v))
                .collect(),
        )
    }

    /// The value under `key` of a dictionary.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(d) => d.iter().find(|(k, _)| k == key.as_bytes()).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }
}

pub fn encode(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Int(i) => out.extend_from_slice(format!("i{i}e").as_bytes()),
        Value::Bytes(b) => {
            out.extend_from_slice(format!("{}:", b.len()).as_bytes());
            out.extend_from_slice(b);
        }
        Value::List(l) => {
            out.push(b'l');
            for x in l {
                encode(x, out);
            }
            out.push(b'e');
        }
        Value::Dict(d) => {
            let mut sorted: Vec<&(Vec<u8>, Value)> = d.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            out.push(b'd');
            for (k, x) in sorted {
                encode(&Value::Bytes(k.clone()), out);
                encode(x, out);
            }
            out.push(b'e');
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub usize);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed bencode at byte {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

/// Decodes one value that must span all of `input`.
pub fn decode(input: &[u8]) -> Result<Value, DecodeError> {
    let (v, used) = decode_at(input, 0, 0)?;
    if used != input.len() {
        return Err(DecodeError(used));
    }
    Ok(v)
}

fn decode_at(input: &[u8], at: usize, depth: usize) -> Result<(Value, usize), DecodeError> {
    if depth > 32 {
        return Err(DecodeError(at));
    }
    match input.get(at) {
        Some(b'i') => {
            let end = find(input, at + 1, b'e')?;
            let n = std::str::from_utf8(&input[at + 1..end])
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(DecodeError(at))?;
            Ok((Value::Int(n), end + 1))
        }
        Some(b'l') => {
            let mut items = Vec::new();
            let mut p = at + 1;
            while input.get(p) != Some(&b'e') {
                let (v, next) = decode_at(input, p, depth + 1)?;
                items.push(v);
                p = next;
            }
            Ok((Value::List(items), p + 1))
        }
        Some(b'd') => {
            let mut items = Vec::new();
            let mut p = at + 1;
            while input.get(p) != Some(&b'e') {
                let (k, next) = decode_at(input, p, depth + 1)?;
                let Value::Bytes(k) = k else {
                    return Err(DecodeError(p));
                };
                let (v, next) = decode_at(input, next, depth + 1)?;
                items.push((k, v));
                p = next;
            }
            Ok((Value::Dict(items), p + 1))
        }
        Some(b'0'..=b'9') => {
            let colon = find(input, at, b':')?;
            let len: usize = std::str::from_utf8(&input[at..colon])
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(DecodeError(at))?;
            let start = colon + 1;
            let end = start.checked_add(len).ok_or(DecodeError(at))?;
            let bytes = input.get(start..end).ok_or(DecodeError(at))?;
            Ok((Value::Bytes(bytes.to_vec()), end))
        }
        _ => Err(DecodeError(at)),
    }
}

fn find(input: &[u8], from: usize, byte: u8) -> Result<usize, DecodeError> {
    input
        .get(from..)
        .and_then(|s| s.iter().position(|&b| b == byte))
        .map(|i| from + i)
        .ok_or(DecodeError(from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_sorts_keys() {
        let v = Value::dict([
            ("sdp", Value::str("v=0")),
            ("command", Value::str("offer")),
            ("flags", Value::List(vec![Value::Int(-3)])),
        ]);
        let mut out = Vec::new();
        encode(&v, &mut out);
        assert_eq!(out, b"d7:command5:offer5:flagsli-3ee3:sdp3:v=0e");
        let back = decode(&out).unwrap();
        assert_eq!(back.get("sdp").and_then(Value::as_str), Some("v=0"));
        assert_eq!(back.get("command").and_then(Value::as_str), Some("offer"));
    }

    #[test]
    fn rejects_truncated_and_trailing_input() {
        assert!(decode(b"d3:sdp10:abce").is_err());
        assert!(decode(b"i1ei2e").is_err());
        assert!(decode(b"l").is_err());
        assert!(decode(b"d1:ai1e").is_err());
    }
}
