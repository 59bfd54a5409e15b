//! A one-pass reader for the common shape of a fill: a flat JSON object of the known
//! keys, strings without escapes. It answers only when it is sure to give what serde
//! gives; anything else (an escape, an unknown key, a nested value, a repeated key, a
//! missing field, any error) returns `None`, and the caller decodes with serde, whose
//! answer and error text stay the reference. A property test holds the two together.

use crate::message::{Env, Fill, Side};
use crate::time::Timestamp;

/// The fill in `bytes`, when it has the common shape.
pub fn fill(bytes: &[u8]) -> Option<Fill> {
    fields(bytes)?.finish()
}

/// [`fill`] into `into`, whose strings keep their buffers (no allocation once they
/// have room): `false`, with `into` unchanged, when `bytes` does not have the common
/// shape.
pub fn fill_into(bytes: &[u8], into: &mut Fill) -> bool {
    fields(bytes).is_some_and(|fields| fields.finish_into(into).is_some())
}

/// The fields of the fill in `bytes`, read in one pass.
fn fields(bytes: &[u8]) -> Option<Fields<'_>> {
    let mut r = Reader { bytes, at: 0 };
    let mut fields = Fields::default();
    r.skip_ws();
    r.eat(b'{')?;
    r.skip_ws();
    if r.peek()? != b'}' {
        loop {
            let (key, _) = r.raw_string()?;
            r.skip_ws();
            r.eat(b':')?;
            r.skip_ws();
            fields.read(key, &mut r)?;
            r.skip_ws();
            match r.next()? {
                b',' => r.skip_ws(),
                b'}' => break,
                _ => return None,
            }
        }
    } else {
        r.at += 1;
    }
    r.skip_ws();
    if r.at != bytes.len() {
        return None;
    }
    Some(fields)
}

/// The values read so far, each at most once.
#[derive(Default)]
struct Fields<'a> {
    seen: u16,
    fill_id: Option<&'a str>,
    order_id: Option<&'a str>,
    strategy_id: Option<&'a str>,
    strategy_version: Option<&'a str>,
    symbol: Option<&'a str>,
    side: Option<Side>,
    qty: Option<f64>,
    expected_price: Option<f64>,
    fill_price: Option<f64>,
    slippage_bps: Option<f64>,
    realized_pnl: Option<f64>,
    ts: Option<Timestamp>,
    env: Option<Env>,
}

impl<'a> Fields<'a> {
    /// Reads the value of `key`; `None` for an unknown or repeated key, or a value
    /// this reader does not take.
    fn read(&mut self, key: &[u8], r: &mut Reader<'a>) -> Option<()> {
        let bit = match key {
            b"fill_id" => 0,
            b"order_id" => 1,
            b"strategy_id" => 2,
            b"strategy_version" => 3,
            b"symbol" => 4,
            b"side" => 5,
            b"qty" => 6,
            b"expected_price" => 7,
            b"fill_price" => 8,
            b"slippage_bps" => 9,
            b"realized_pnl" => 10,
            b"ts" => 11,
            b"env" => 12,
            _ => return None,
        };
        if self.seen & (1 << bit) != 0 {
            return None;
        }
        self.seen |= 1 << bit;
        // `null` is absent for the optional fields, as serde reads an `Option`.
        let optional = matches!(bit, 1 | 3 | 9 | 10 | 12);
        if optional && r.null() {
            return Some(());
        }
        match bit {
            0 => self.fill_id = Some(r.string()?),
            1 => self.order_id = Some(r.string()?),
            2 => self.strategy_id = Some(r.string()?),
            3 => self.strategy_version = Some(r.string()?),
            4 => self.symbol = Some(r.string()?),
            5 => {
                self.side = Some(match r.string()? {
                    "buy" => Side::Buy,
                    "sell" => Side::Sell,
                    _ => return None,
                })
            }
            6 => self.qty = Some(r.number()?),
            7 => self.expected_price = Some(r.number()?),
            8 => self.fill_price = Some(r.number()?),
            9 => self.slippage_bps = Some(r.number()?),
            10 => self.realized_pnl = Some(r.number()?),
            11 => self.ts = Some(Timestamp::from_text(r.string()?).ok()?),
            _ => {
                self.env = Some(match r.string()? {
                    "prod" => Env::Prod,
                    "stg" => Env::Stg,
                    "dev" => Env::Dev,
                    _ => return None,
                })
            }
        }
        Some(())
    }

    /// [`Fields::finish`] into an existing fill, reusing its strings' buffers; `into`
    /// is left as it was when a required field is missing.
    fn finish_into(self, into: &mut Fill) -> Option<()> {
        let (fill_id, strategy_id, symbol) = (self.fill_id?, self.strategy_id?, self.symbol?);
        let (side, qty, expected_price, fill_price, ts) = (
            self.side?,
            self.qty?,
            self.expected_price?,
            self.fill_price?,
            self.ts?,
        );
        fn set(to: &mut String, text: &str) {
            to.clear();
            to.push_str(text);
        }
        fn set_option(to: &mut Option<String>, text: Option<&str>) {
            match (to.as_mut(), text) {
                (Some(to), Some(text)) => set(to, text),
                (_, text) => *to = text.map(str::to_owned),
            }
        }
        set(&mut into.fill_id, fill_id);
        set_option(&mut into.order_id, self.order_id);
        set(&mut into.strategy_id, strategy_id);
        set_option(&mut into.strategy_version, self.strategy_version);
        set(&mut into.symbol, symbol);
        into.side = side;
        into.qty = qty;
        into.expected_price = expected_price;
        into.fill_price = fill_price;
        into.slippage_bps = self.slippage_bps;
        into.realized_pnl = self.realized_pnl;
        into.ts = ts;
        into.env = self.env;
        Some(())
    }

    /// The fill, when every required field was given.
    fn finish(self) -> Option<Fill> {
        Some(Fill {
            fill_id: self.fill_id?.to_owned(),
            order_id: self.order_id.map(str::to_owned),
            strategy_id: self.strategy_id?.to_owned(),
            strategy_version: self.strategy_version.map(str::to_owned),
            symbol: self.symbol?.to_owned(),
            side: self.side?,
            qty: self.qty?,
            expected_price: self.expected_price?,
            fill_price: self.fill_price?,
            slippage_bps: self.slippage_bps,
            realized_pnl: self.realized_pnl,
            ts: self.ts?,
            env: self.env,
        })
    }
}

/// Exact powers of ten as `f64`, as serde_json divides by them.
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// At most this many digits make a significand below 2^53, exact as an `f64`.
const EXACT_DIGITS: usize = 15;

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// The index of the first byte of `x` (little-endian) that is `"`, `\\` or below
/// 0x20. The borrow of the subtraction can mark bytes after a true match, never
/// before one, so the lowest mark is exact.
fn special_byte(x: u64) -> Option<usize> {
    let zero_in = |v: u64| v.wrapping_sub(ONES) & !v & HIGH_BITS;
    let control = x.wrapping_sub(ONES * 0x20) & !x & HIGH_BITS;
    let marks =
        zero_in(x ^ (ONES * u64::from(b'"'))) | zero_in(x ^ (ONES * u64::from(b'\\'))) | control;
    (marks != 0).then(|| marks.trailing_zeros() as usize / 8)
}

/// Reads bytes, not text: outside strings only ASCII is valid JSON, and each string is
/// checked for UTF-8 on its own, as serde_json checks it.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn eat(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// `null`, consumed when it is there.
    fn null(&mut self) -> bool {
        let found = self.bytes[self.at..].starts_with(b"null");
        if found {
            self.at += 4;
        }
        found
    }

    /// The bytes of a string without escapes or control characters (serde refuses the
    /// latter; the former it would unescape), and whether they are all ASCII. Eight
    /// bytes at a time while eight remain.
    fn raw_string(&mut self) -> Option<(&'a [u8], bool)> {
        self.eat(b'"')?;
        let start = self.at;
        let bytes = self.bytes;
        let mut high = 0u64;
        while let Some(word) = bytes.get(self.at..self.at + 8) {
            let x = u64::from_le_bytes(word.try_into().ok()?);
            match special_byte(x) {
                Some(i) => {
                    self.at += i;
                    high |= x & ((1u64 << (8 * i)) - 1);
                    break;
                }
                None => {
                    high |= x;
                    self.at += 8;
                }
            }
        }
        loop {
            match *bytes.get(self.at)? {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                b => {
                    high |= u64::from(b);
                    self.at += 1;
                }
            }
        }
        self.at += 1;
        Some((&bytes[start..self.at - 1], high & HIGH_BITS == 0))
    }

    /// A string as [`Reader::raw_string`] reads it, when it is UTF-8.
    fn string(&mut self) -> Option<&'a str> {
        match self.raw_string()? {
            // SAFETY: every byte is below 0x80, and ASCII is UTF-8.
            (raw, true) => Some(unsafe { std::str::from_utf8_unchecked(raw) }),
            (raw, false) => std::str::from_utf8(raw).ok(),
        }
    }

    /// A JSON number, bit for bit what serde_json gives: [`Reader::plain_number`] for
    /// the common shape, serde_json itself for the rest.
    fn number(&mut self) -> Option<f64> {
        let start = self.at;
        if let Some(value) = self.plain_number() {
            return Some(value);
        }
        self.at = start;
        while matches!(
            self.peek(),
            Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
        ) {
            self.at += 1;
        }
        serde_json::from_slice(&self.bytes[start..self.at]).ok()
    }

    /// `-?(0|[1-9][0-9]*)(.[0-9]+)?` of at most [`EXACT_DIGITS`] digits, computed as
    /// serde_json computes it: the digits as an integer (exact below 2^53), divided
    /// once by the exact power of ten of the fraction's length, so correctly rounded.
    /// `None` (position left wherever) for anything else, an exponent included.
    fn plain_number(&mut self) -> Option<f64> {
        let negative = self.peek() == Some(b'-');
        self.at += usize::from(negative);
        let (mut significand, mut digits) = (0u64, 0usize);
        let int_start = self.at;
        let int_len = self.digits(&mut significand, &mut digits)?;
        if int_len == 0 || (int_len > 1 && self.bytes[int_start] == b'0') {
            return None;
        }
        let mut scale = 0;
        if self.peek() == Some(b'.') {
            self.at += 1;
            scale = self.digits(&mut significand, &mut digits)?;
            if scale == 0 {
                return None;
            }
        }
        if matches!(self.peek(), Some(b'.' | b'e' | b'E' | b'+' | b'-')) {
            return None;
        }
        let value = significand as f64 / POW10[scale];
        Some(if negative { -value } else { value })
    }

    /// Reads a run of digits into `significand`, counting them into `digits`; how many
    /// it read, `None` once `digits` passes [`EXACT_DIGITS`].
    fn digits(&mut self, significand: &mut u64, digits: &mut usize) -> Option<usize> {
        let start = self.at;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            *significand = *significand * 10 + u64::from(d - b'0');
            *digits += 1;
            if *digits > EXACT_DIGITS {
                return None;
            }
            self.at += 1;
        }
        Some(self.at - start)
    }
}

#[cfg(test)]
mod tests;
