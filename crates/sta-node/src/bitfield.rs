//! Which pieces a peer (or we) have: one bit per piece, most significant bit
//! first, exactly as the `bitfield` message carries it (bitvec's `Msb0`).

use bitvec::prelude::*;
use bytes::Bytes;

#[derive(Clone, PartialEq, Eq, Default)]
pub struct Bitfield {
    bits: BitVec<u8, Msb0>,
    count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BitfieldError {
    #[error("bitfield of {got} bytes, expected {want}")]
    Length { got: usize, want: usize },
    #[error("bitfield sets spare bits past the last piece")]
    SpareBits,
}

impl Bitfield {
    pub fn new(num_pieces: u32) -> Self {
        Bitfield {
            bits: bitvec![u8, Msb0; 0; num_pieces as usize],
            count: 0,
        }
    }

    pub fn full(num_pieces: u32) -> Self {
        Bitfield {
            bits: bitvec![u8, Msb0; 1; num_pieces as usize],
            count: num_pieces,
        }
    }

    /// Parses a peer's `bitfield` message: the length must match and spare
    /// bits must be zero (BEP 3 lets us drop peers that send either wrong).
    pub fn from_wire(bytes: &[u8], num_pieces: u32) -> Result<Self, BitfieldError> {
        let want = (num_pieces as usize).div_ceil(8);
        if bytes.len() != want {
            return Err(BitfieldError::Length {
                got: bytes.len(),
                want,
            });
        }
        let mut bits = BitVec::<u8, Msb0>::from_slice(bytes);
        if bits[num_pieces as usize..].any() {
            return Err(BitfieldError::SpareBits);
        }
        bits.truncate(num_pieces as usize);
        let count = bits.count_ones() as u32;
        Ok(Bitfield { bits, count })
    }

    pub fn to_wire(&self) -> Bytes {
        // The tail bits of the last byte are zero: the vector only ever grew from zeros.
        Bytes::copy_from_slice(self.bits.as_raw_slice())
    }

    pub fn len(&self) -> u32 {
        self.bits.len() as u32
    }

    pub fn is_empty(&self) -> bool {
        self.bits.is_empty()
    }

    pub fn has(&self, index: u32) -> bool {
        self.bits.get(index as usize).is_some_and(|b| *b)
    }

    /// Sets a bit; returns true when it was not set before.
    pub fn set(&mut self, index: u32) -> bool {
        match self.bits.get_mut(index as usize) {
            Some(mut b) if !*b => {
                b.set(true);
                self.count += 1;
                true
            }
            _ => false,
        }
    }

    /// Clears a bit; returns true when it was set before.
    pub fn clear(&mut self, index: u32) -> bool {
        match self.bits.get_mut(index as usize) {
            Some(mut b) if *b => {
                b.set(false);
                self.count -= 1;
                true
            }
            _ => false,
        }
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    pub fn is_complete(&self) -> bool {
        self.count == self.len()
    }

    pub fn iter_ones(&self) -> impl Iterator<Item = u32> + '_ {
        self.bits.iter_ones().map(|i| i as u32)
    }

    pub fn iter_zeros(&self) -> impl Iterator<Item = u32> + '_ {
        self.bits.iter_zeros().map(|i| i as u32)
    }
}

impl std::fmt::Debug for Bitfield {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bitfield({}/{})", self.count, self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_round_trip_and_msb_first() {
        let mut b = Bitfield::new(10);
        assert!(b.set(0));
        assert!(!b.set(0));
        assert!(b.set(9));
        assert_eq!(&b.to_wire()[..], &[0b1000_0000, 0b0100_0000]);
        let back = Bitfield::from_wire(&b.to_wire(), 10).unwrap();
        assert_eq!(back, b);
        assert_eq!(back.count(), 2);
        assert!(!b.set(10), "out of range is ignored");
        assert!(b.clear(9));
        assert_eq!(b.iter_ones().collect::<Vec<_>>(), vec![0]);
    }

    #[test]
    fn bad_wire_bitfields() {
        assert_eq!(
            Bitfield::from_wire(&[0xff], 10),
            Err(BitfieldError::Length { got: 1, want: 2 })
        );
        assert_eq!(
            Bitfield::from_wire(&[0xff, 0xff], 10),
            Err(BitfieldError::SpareBits)
        );
        assert!(
            Bitfield::from_wire(&[0xff, 0xc0], 10)
                .unwrap()
                .is_complete()
        );
    }
}
