//! Exact decimals of any precision (MySQL allows 65 digits, Postgres far more).
//!
//! Kept as the canonical digit string of the unscaled value plus a scale; converters produce
//! the big-endian two's-complement bytes that Kafka Connect's `Decimal` logical type needs.

use std::fmt;

/// An exact decimal number: `unscaled * 10^-scale`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Decimal {
    negative: bool,
    /// Unscaled magnitude in decimal digits, no leading zeros ("0" for zero).
    digits: String,
    scale: u32,
}

/// Why a string is not a decimal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid decimal {input:?}")]
pub struct DecimalParseError {
    input: String,
}

impl Decimal {
    /// Parses `-123.4500` style text (what MySQL and Postgres print). The scale is the number
    /// of digits after the point, kept as written.
    pub fn parse(text: &str) -> Result<Self, DecimalParseError> {
        let err = || DecimalParseError {
            input: text.to_owned(),
        };
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let (int_part, frac_part) = match rest.split_once('.') {
            Some((i, f)) => (i, f),
            None => (rest, ""),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(err());
        }
        if !int_part
            .bytes()
            .chain(frac_part.bytes())
            .all(|b| b.is_ascii_digit())
        {
            return Err(err());
        }
        let mut digits: String = int_part.chars().chain(frac_part.chars()).collect();
        let trimmed = digits.trim_start_matches('0').len();
        digits.drain(..digits.len() - trimmed);
        if digits.is_empty() {
            digits.push('0');
        }
        let scale = u32::try_from(frac_part.len()).map_err(|_| err())?;
        let negative = negative && digits != "0";
        Ok(Decimal {
            negative,
            digits,
            scale,
        })
    }

    /// Builds a decimal from the ASCII digits of its unscaled magnitude (leading zeros
    /// allowed), a sign and a scale: what a binary decimal decoder produces without going
    /// through text. `None` when `digits` holds anything but ASCII digits.
    pub fn from_unscaled_digits(negative: bool, mut digits: String, scale: u32) -> Option<Self> {
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let zeros = digits.len() - digits.trim_start_matches('0').len();
        digits.drain(..zeros);
        if digits.is_empty() {
            digits.push('0');
        }
        Some(Decimal {
            negative: negative && digits != "0",
            digits,
            scale,
        })
    }

    /// Builds a decimal from an unscaled integer and a scale.
    pub fn from_i128(unscaled: i128, scale: u32) -> Self {
        let negative = unscaled < 0;
        Decimal {
            negative,
            digits: unscaled.unsigned_abs().to_string(),
            scale,
        }
    }

    pub fn scale(&self) -> u32 {
        self.scale
    }

    pub fn is_negative(&self) -> bool {
        self.negative
    }

    /// Number of significant digits of the unscaled value.
    pub fn precision(&self) -> u32 {
        u32::try_from(self.digits.len()).unwrap_or(u32::MAX)
    }

    /// The unscaled value as minimal big-endian two's-complement bytes (Kafka Connect
    /// `Decimal`, Avro `decimal`).
    pub fn unscaled_be_bytes(&self) -> Vec<u8> {
        // Up to 38 digits the magnitude fits a u128: no long division.
        if self.digits.len() <= 38
            && let Ok(magnitude) = self.digits.parse::<u128>()
            && let Ok(magnitude) = i128::try_from(magnitude)
        {
            let value = if self.negative { -magnitude } else { magnitude };
            let bytes = value.to_be_bytes();
            // Minimal two's complement: drop leading bytes that only repeat the sign.
            let fill = if value < 0 { 0xff } else { 0x00 };
            let mut start = 0;
            while start + 1 < bytes.len()
                && bytes[start] == fill
                && (bytes[start + 1] & 0x80) == (fill & 0x80)
            {
                start += 1;
            }
            return bytes[start..].to_vec();
        }
        self.long_be_bytes()
    }

    /// [`Decimal::unscaled_be_bytes`] for any number of digits.
    fn long_be_bytes(&self) -> Vec<u8> {
        // Magnitude in base 256, little-endian, by repeated division of the digit string.
        let mut decimal: Vec<u8> = self.digits.bytes().map(|b| b - b'0').collect();
        let mut magnitude = Vec::new();
        while !(decimal.is_empty() || decimal == [0]) {
            let mut remainder: u32 = 0;
            let mut quotient = Vec::with_capacity(decimal.len());
            for &d in &decimal {
                let acc = remainder * 10 + u32::from(d);
                let q = acc / 256;
                remainder = acc % 256;
                if !(quotient.is_empty() && q == 0) {
                    quotient.push(q as u8);
                }
            }
            magnitude.push(remainder as u8);
            decimal = quotient;
        }
        if magnitude.is_empty() {
            return vec![0];
        }
        if self.negative {
            // Two's complement: invert and add one.
            let mut carry = true;
            for byte in magnitude.iter_mut() {
                let inverted = !*byte;
                let (sum, overflow) = inverted.overflowing_add(u8::from(carry));
                *byte = sum;
                carry = overflow;
            }
            if magnitude.last().is_some_and(|b| b & 0x80 == 0) {
                magnitude.push(0xff);
            }
        } else if magnitude.last().is_some_and(|b| b & 0x80 != 0) {
            magnitude.push(0);
        }
        magnitude.reverse();
        magnitude
    }

    /// Inverse of [`Decimal::unscaled_be_bytes`].
    pub fn from_unscaled_be_bytes(bytes: &[u8], scale: u32) -> Self {
        let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
        let mut magnitude: Vec<u8> = bytes.to_vec();
        if negative {
            // Negate: invert and add one.
            let mut carry = true;
            for byte in magnitude.iter_mut().rev() {
                let inverted = !*byte;
                let (sum, overflow) = inverted.overflowing_add(u8::from(carry));
                *byte = sum;
                carry = overflow;
            }
        }
        // Base 256 big-endian to decimal digits.
        let mut digits: Vec<u8> = vec![0];
        for &byte in &magnitude {
            let mut carry = u32::from(byte);
            for d in digits.iter_mut() {
                let acc = u32::from(*d) * 256 + carry;
                *d = (acc % 10) as u8;
                carry = acc / 10;
            }
            while carry > 0 {
                digits.push((carry % 10) as u8);
                carry /= 10;
            }
        }
        while digits.len() > 1 && digits.last() == Some(&0) {
            digits.pop();
        }
        let text: String = digits.iter().rev().map(|d| char::from(b'0' + d)).collect();
        Decimal {
            negative: negative && text != "0",
            digits: text,
            scale,
        }
    }

    /// The value as `f64` (lossy), for `decimal.handling.mode=double`.
    pub fn to_f64(&self) -> f64 {
        self.to_string().parse().unwrap_or(f64::NAN)
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.negative {
            f.write_str("-")?;
        }
        let scale = self.scale as usize;
        if scale == 0 {
            return f.write_str(&self.digits);
        }
        if self.digits.len() > scale {
            let (int, frac) = self.digits.split_at(self.digits.len() - scale);
            write!(f, "{int}.{frac}")
        } else {
            write!(f, "0.{:0>width$}", self.digits, width = scale)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_prints() {
        for (text, printed, scale) in [
            ("123.45", "123.45", 2),
            ("-0.001", "-0.001", 3),
            ("-0.000", "0.000", 3),
            ("42", "42", 0),
            ("0007.10", "7.10", 2),
        ] {
            let d = Decimal::parse(text).expect("valid decimal");
            assert_eq!(d.to_string(), printed, "{text}");
            assert_eq!(d.scale(), scale);
        }
        assert!(Decimal::parse("1.2.3").is_err());
        assert!(Decimal::parse("").is_err());
        assert!(Decimal::parse("-").is_err());
        assert!(Decimal::parse("12a").is_err());
    }

    #[test]
    fn twos_complement_matches_java_bigdecimal() {
        // java.math.BigInteger.toByteArray() of these values.
        assert_eq!(Decimal::from_i128(0, 0).unscaled_be_bytes(), vec![0]);
        assert_eq!(Decimal::from_i128(127, 0).unscaled_be_bytes(), vec![0x7f]);
        assert_eq!(
            Decimal::from_i128(128, 0).unscaled_be_bytes(),
            vec![0x00, 0x80]
        );
        assert_eq!(Decimal::from_i128(-1, 0).unscaled_be_bytes(), vec![0xff]);
        assert_eq!(Decimal::from_i128(-128, 0).unscaled_be_bytes(), vec![0x80]);
        assert_eq!(
            Decimal::from_i128(-129, 0).unscaled_be_bytes(),
            vec![0xff, 0x7f]
        );
        assert_eq!(
            Decimal::from_i128(12345, 2).unscaled_be_bytes(),
            vec![0x30, 0x39]
        );
    }

    #[test]
    fn sixty_five_digits_round_trip() {
        let text = "-99999999999999999999999999999999999.999999999999999999999999999999";
        let d = Decimal::parse(text).expect("valid");
        let back = Decimal::from_unscaled_be_bytes(&d.unscaled_be_bytes(), d.scale());
        assert_eq!(back, d);
        assert_eq!(back.to_string(), text);
    }

    #[test]
    fn unscaled_digits_are_normalised() {
        let d = Decimal::from_unscaled_digits(true, "000012345".into(), 2).expect("digits");
        assert_eq!(d.to_string(), "-123.45");
        let zero = Decimal::from_unscaled_digits(true, "0000".into(), 2).expect("digits");
        assert_eq!(zero, Decimal::parse("0.00").expect("parses"));
        assert!(Decimal::from_unscaled_digits(false, "12a".into(), 0).is_none());
    }

    proptest! {
        /// The u128 fast path gives the bytes of the long division, sign and length included.
        #[test]
        fn fast_bytes_equal_long_division(v in any::<i128>(), shift in 0u32..100) {
            let d = Decimal::from_i128(v >> (shift % 127), 0);
            prop_assert_eq!(d.unscaled_be_bytes(), d.long_be_bytes());
        }

        #[test]
        fn bytes_round_trip(v in any::<i128>(), scale in 0u32..20) {
            let d = Decimal::from_i128(v, scale);
            let bytes = d.unscaled_be_bytes();
            let expected = {
                let full = v.to_be_bytes();
                // minimal two's complement: strip redundant sign bytes
                let mut start = 0;
                while start < 15 {
                    let (b, next) = (full[start], full[start + 1]);
                    if (b == 0 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) { start += 1 } else { break }
                }
                full[start..].to_vec()
            };
            prop_assert_eq!(&bytes, &expected);
            prop_assert_eq!(Decimal::from_unscaled_be_bytes(&bytes, scale), d);
        }
    }
}
