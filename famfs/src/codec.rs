//! Little-endian field access by explicit offset. Nothing here transmutes a struct: every field
//! is read from and written to its own byte range, and every read is bounds-checked into a
//! [`FormatError::Truncated`] naming the field.

use crate::error::FormatError;
use uuid::Uuid;

/// Reads fields of one on-media structure.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    /// Absolute device offset of `bytes[0]`, for error messages.
    base: u64,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8], base: u64) -> Self {
        Reader { bytes, base }
    }

    /// Absolute offset of a structure-relative offset.
    pub(crate) fn at(&self, off: usize) -> u64 {
        self.base + off as u64
    }

    pub(crate) fn bytes(&self, off: usize, len: usize, field: &'static str) -> Result<&'a [u8], FormatError> {
        match off.checked_add(len).and_then(|end| self.bytes.get(off..end)) {
            Some(b) => Ok(b),
            None => Err(FormatError::Truncated {
                offset: self.at(off),
                field,
                need: len as u64,
                have: self.bytes.len().saturating_sub(off) as u64,
            }),
        }
    }

    pub(crate) fn u64(&self, off: usize, field: &'static str) -> Result<u64, FormatError> {
        let b = self.bytes(off, 8, field)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    pub(crate) fn u32(&self, off: usize, field: &'static str) -> Result<u32, FormatError> {
        let b = self.bytes(off, 4, field)?;
        let mut a = [0u8; 4];
        a.copy_from_slice(b);
        Ok(u32::from_le_bytes(a))
    }

    /// A libuuid `uuid_t`: the RFC 4122 bytes in printed order.
    pub(crate) fn uuid(&self, off: usize, field: &'static str) -> Result<Uuid, FormatError> {
        let b = self.bytes(off, 16, field)?;
        let mut a = [0u8; 16];
        a.copy_from_slice(b);
        Ok(Uuid::from_bytes(a))
    }

    /// A NUL-terminated path in a fixed-size `char[len]` field.
    pub(crate) fn path(&self, off: usize, len: usize, field: &'static str) -> Result<String, FormatError> {
        let b = self.bytes(off, len, field)?;
        let Some(nul) = b.iter().position(|&c| c == 0) else {
            return Err(FormatError::PathNotTerminated { offset: self.at(off), field, len });
        };
        String::from_utf8(b[..nul].to_vec()).map_err(|_| FormatError::PathNotUtf8 { offset: self.at(off), field })
    }

    /// Checks a stored CRC-32 (kept in a u64 field) against the bytes `0..covered`.
    pub(crate) fn check_crc(
        &self,
        covered: usize,
        crc_off: usize,
        field: &'static str,
        what: &'static str,
    ) -> Result<(), FormatError> {
        let stored = self.u64(crc_off, field)?;
        let computed = crc32fast::hash(self.bytes(0, covered, field)?);
        if stored != u64::from(computed) {
            return Err(FormatError::CrcMismatch { offset: self.at(crc_off), field, what, stored, computed });
        }
        Ok(())
    }

    pub(crate) fn invalid(&self, off: usize, field: &'static str, value: u64, reason: &'static str) -> FormatError {
        FormatError::InvalidField { offset: self.at(off), field, value, reason }
    }
}

/// Writes fields into a zero-initialised buffer (famfs builds every structure in zeroed memory,
/// and its CRCs cover the padding, so unused bytes must stay zero).
pub(crate) struct Writer<'a> {
    bytes: &'a mut [u8],
}

impl<'a> Writer<'a> {
    pub(crate) fn new(bytes: &'a mut [u8]) -> Self {
        Writer { bytes }
    }

    pub(crate) fn u64(&mut self, off: usize, v: u64) {
        self.bytes[off..off + 8].copy_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn u32(&mut self, off: usize, v: u32) {
        self.bytes[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn uuid(&mut self, off: usize, v: &Uuid) {
        self.bytes[off..off + 16].copy_from_slice(v.as_bytes());
    }

    pub(crate) fn raw(&mut self, off: usize, v: &[u8]) {
        self.bytes[off..off + v.len()].copy_from_slice(v);
    }

    /// Writes CRC-32 of bytes `0..covered` as a u64 at `crc_off`.
    pub(crate) fn crc(&mut self, covered: usize, crc_off: usize) {
        let crc = crc32fast::hash(&self.bytes[..covered]);
        self.u64(crc_off, u64::from(crc));
    }
}
