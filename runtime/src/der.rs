//! The one DER reader the connectors' TLS code needs: splitting an element off a byte slice
//! (a PKCS#8 key's algorithm, a certificate's signature algorithm). Bounds-checked: a
//! truncated or oversized element is `None`, never a panic.

/// Splits one DER element off `input`: `(tag, contents, rest)`. Definite lengths of up to
/// four bytes only (certificates and keys never need more).
pub fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, rest) = rest.split_at(n);
        let len = bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest)
    };
    (rest.len() >= len).then(|| {
        let (contents, rest) = rest.split_at(len);
        (tag, contents, rest)
    })
}

/// [`element`] when its tag is `tag`: `(contents, rest)`.
pub fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    match element(input)? {
        (t, contents, rest) if t == tag => Some((contents, rest)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_lengths_and_truncation() {
        assert_eq!(element(&[0x02, 1, 7, 9]), Some((0x02, &[7][..], &[9][..])));
        let mut long = vec![0x04, 0x81, 200];
        long.extend([0xab; 200]);
        let (tag, contents, rest) = element(&long).expect("long form");
        assert_eq!((tag, contents.len(), rest.len()), (0x04, 200, 0));
        assert_eq!(element(&[0x04, 0x81, 200, 1]), None, "truncated contents");
        assert_eq!(
            element(&[0x04, 0x85, 0, 0, 0, 0, 1]),
            None,
            "length of five bytes"
        );
        assert_eq!(element(&[0x04, 0x80]), None, "indefinite length");
        assert_eq!(element(&[0x30]), None);
        assert_eq!(expect(&[0x02, 1, 7], 0x02), Some((&[7][..], &[][..])));
        assert_eq!(expect(&[0x02, 1, 7], 0x30), None);
    }
}
