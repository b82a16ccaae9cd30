//! Which parts of a requested guest range are mapped from the file, and which are copied.
//!
//! Files of a mount and image files map at any host page. A device-dax maps only in whole
//! units of its alignment (2 MiB typically): the host address, the device offset and the
//! length of every map must be multiples of it, or `mmap` fails with `EINVAL`. So on a dax
//! device each contiguous piece of the dataset is cut into
//!
//! - whole units whose guest address agrees with their device offset modulo the unit: mapped
//!   (zero-copy), extended through the end of the last unit when the guest reserved room for it
//!   (`dataset.map-into`) and the file's allocation holds it (famfs allocates whole 2 MiB
//!   units, so the rounded tail is the file's own space, zeroed by famfsctl);
//! - the partial units before and after: copied into the guest's own pages through the device's
//!   guarded read, so that every guest works, however it placed the range.
//!
//! A shared map of a device aligned past the copy-on-write block (a 1 GiB-aligned device) is
//! copied whole: the block copy would have to split a unit, which device-dax refuses.

use crate::catalog::FilePiece;

/// How one part of the range gets its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum How {
    /// `mmap` of piece `piece` (an index into the pieces planned from) at `file_offset`.
    Map {
        /// Which piece.
        piece: usize,
        /// Offset in that piece's file.
        file_offset: u64,
    },
    /// Copied from the dataset.
    Copy,
}

/// A part of the guest range, in range offsets (from the guest address of the mapping).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Part {
    /// Offset from the start of the range.
    pub(crate) range_offset: u64,
    /// Length in bytes (a multiple of the host page).
    pub(crate) len: u64,
    /// Mapped or copied.
    pub(crate) how: How,
}

/// What a planned range comes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The parts, in address order, without gaps from offset 0 to `want`.
    pub(crate) parts: Vec<Part>,
    /// Bytes of guest memory the parts cover: `want`, or more when the last unit was mapped
    /// whole into the reserved room past it.
    pub(crate) span: u64,
}

/// Plans `want` bytes (the dataset bytes asked for, rounded up to the host page) at host
/// address `host_start`, from `pieces` (which cover at least `want` bytes from range offset 0;
/// on a dax device they may go on through the file's allocation up to the reserved room), on a
/// source that maps in `unit`s (the host page, or a dax device's alignment).
pub(crate) fn plan(pieces: &[FilePiece<'_>], host_start: u64, want: u64, unit: u64, page: u64, shared: bool) -> Plan {
    let mut parts = Vec::new();
    let mut span = want;
    for (index, p) in pieces.iter().enumerate() {
        if p.range_offset >= want {
            break;
        }
        if unit <= page {
            let len = (p.len.div_ceil(page) * page).min(want - p.range_offset);
            parts.push(Part {
                range_offset: p.range_offset,
                len,
                how: How::Map { piece: index, file_offset: p.file_offset },
            });
            continue;
        }
        let needed = want - p.range_offset;
        let (lead, body) = match mappable(host_start + p.range_offset, p.file_offset, p.len, unit, shared) {
            // No unit that lies wholly past what was asked for.
            Some((lead, body)) if lead < needed => (lead, body.min((needed - lead).div_ceil(unit) * unit)),
            _ => (needed.min(p.len), 0),
        };
        let mut push = |range_offset: u64, len: u64, how: How| {
            if len > 0 {
                parts.push(Part { range_offset, len, how });
            }
        };
        push(p.range_offset, lead.min(needed), How::Copy);
        push(p.range_offset + lead, body, How::Map { piece: index, file_offset: p.file_offset + lead });
        let after = lead + body;
        if after < needed {
            push(p.range_offset + after, (needed - after).min(p.len - after.min(p.len)), How::Copy);
        }
        span = span.max(p.range_offset + after);
    }
    Plan { parts, span }
}

/// Of `len` bytes at host address `addr` that show file offset `file_offset`, the part that can
/// be mapped on a device whose maps must be whole `unit`s (address, file offset and length all
/// multiples of it): `(lead, body)`, the body starting `lead` bytes in. `None` when there is no
/// whole unit, when address and file offset disagree modulo `unit` (the guest placed the range
/// so), or when a shared map's copy-on-write could not copy one of its blocks without splitting
/// a unit (`unit` above [`crate::guard::BLOCK`], e.g. a 1 GiB-aligned device).
pub(crate) fn mappable(addr: u64, file_offset: u64, len: u64, unit: u64, shared: bool) -> Option<(u64, u64)> {
    if addr % unit != file_offset % unit || (shared && unit > crate::guard::BLOCK as u64) {
        return None;
    }
    let lead = (unit - addr % unit) % unit;
    let body = len.checked_sub(lead)? / unit * unit;
    (body > 0).then_some((lead, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    const MIB: u64 = 1 << 20;
    const PAGE: u64 = 4096;

    fn piece(fd: std::os::fd::BorrowedFd<'_>, range_offset: u64, file_offset: u64, len: u64) -> FilePiece<'_> {
        FilePiece { fd, range_offset, file_offset, len }
    }

    #[test]
    fn whole_device_units_are_mapped_and_partial_ones_are_not() {
        // The file of the first real device-dax failure: 3,903,488 bytes at device 0xa00000,
        // at a 2 MiB-aligned guest address: one whole unit, the rest copied.
        let plen = 3_903_488u64.div_ceil(PAGE) * PAGE;
        assert_eq!(mappable(0x4000_0000, 0xa0_0000, plen, 2 * MIB, true), Some((0, 2 * MIB)));
        // A range that starts 64 KiB before a unit boundary, in phase with the device.
        assert_eq!(mappable(0x4000_0000 - 65536, 0xa0_0000 - 65536, 5 * MIB, 2 * MIB, true), Some((65536, 4 * MIB)));
        // Out of phase: nothing can be mapped, whatever the length.
        assert_eq!(mappable(0x4001_0000, 0xa0_0000, 64 * MIB, 2 * MIB, true), None);
        // Shorter than a unit.
        assert_eq!(mappable(0x4000_0000, 0xa0_0000, MIB, 2 * MIB, true), None);
        // Exactly whole units.
        assert_eq!(mappable(0x4000_0000, 0, 6 * MIB, 2 * MIB, false), Some((0, 6 * MIB)));
    }

    #[test]
    fn shared_maps_of_devices_aligned_past_the_copy_block_are_not_made() {
        // Copy-on-write copies 2 MiB blocks, which cannot split a 1 GiB-aligned dax mapping.
        assert_eq!(mappable(1 << 30, 1 << 30, 2 << 30, 1 << 30, true), None);
        assert_eq!(mappable(1 << 30, 1 << 30, 2 << 30, 1 << 30, false), Some((0, 2 << 30)));
    }

    #[test]
    fn pages_map_whole_pieces() {
        let f = tempfile::tempfile().unwrap();
        let fd = f.as_fd();
        let pieces = [piece(fd, 0, 0x40_0000, 2 * MIB), piece(fd, 2 * MIB, 0x80_0000, MIB + 100)];
        let p = plan(&pieces, 0x1_0000, 3 * MIB + PAGE, PAGE, PAGE, false);
        assert_eq!(
            p.parts,
            vec![
                Part { range_offset: 0, len: 2 * MIB, how: How::Map { piece: 0, file_offset: 0x40_0000 } },
                Part { range_offset: 2 * MIB, len: MIB + PAGE, how: How::Map { piece: 1, file_offset: 0x80_0000 } },
            ]
        );
        assert_eq!(p.span, 3 * MIB + PAGE);
    }

    #[test]
    fn a_dax_tail_is_copied_unless_the_allocation_and_the_reservation_hold_its_unit() {
        let f = tempfile::tempfile().unwrap();
        let fd = f.as_fd();
        let want = 3_903_488u64.div_ceil(PAGE) * PAGE;
        // Pieces only as long as asked for (`map`): the partial second unit is copied.
        let short = [piece(fd, 0, 0xa0_0000, want)];
        let p = plan(&short, 0x4000_0000, want, 2 * MIB, PAGE, true);
        assert_eq!(
            p.parts,
            vec![
                Part { range_offset: 0, len: 2 * MIB, how: How::Map { piece: 0, file_offset: 0xa0_0000 } },
                Part { range_offset: 2 * MIB, len: want - 2 * MIB, how: How::Copy },
            ]
        );
        assert_eq!(p.span, want);
        // Pieces through the file's allocation (`map-into` with room reserved): all mapped.
        let long = [piece(fd, 0, 0xa0_0000, 4 * MIB)];
        let p = plan(&long, 0x4000_0000, want, 2 * MIB, PAGE, true);
        assert_eq!(
            p.parts,
            vec![Part { range_offset: 0, len: 4 * MIB, how: How::Map { piece: 0, file_offset: 0xa0_0000 } }]
        );
        assert_eq!(p.span, 4 * MIB);
    }

    #[test]
    fn a_range_out_of_phase_with_the_device_is_copied_whole() {
        let f = tempfile::tempfile().unwrap();
        let fd = f.as_fd();
        let pieces = [piece(fd, 0, 0xa0_0000, 4 * MIB), piece(fd, 4 * MIB, 0x1000_0000, 4 * MIB)];
        let p = plan(&pieces, 0x4001_0000, 5 * MIB, 2 * MIB, PAGE, true);
        assert_eq!(
            p.parts,
            vec![
                Part { range_offset: 0, len: 4 * MIB, how: How::Copy },
                Part { range_offset: 4 * MIB, len: MIB, how: How::Copy },
            ]
        );
        assert_eq!(p.span, 5 * MIB);
    }

    #[test]
    fn a_head_before_the_first_unit_is_copied() {
        let f = tempfile::tempfile().unwrap();
        let fd = f.as_fd();
        // Starts 64 KiB before a unit boundary, in phase: 64 KiB copied, then units mapped.
        let pieces = [piece(fd, 0, 0xa0_0000 - 65536, 6 * MIB - 65536)];
        let p = plan(&pieces, 0x4000_0000 - 65536, 4 * MIB + 65536, 2 * MIB, PAGE, true);
        assert_eq!(
            p.parts,
            vec![
                Part { range_offset: 0, len: 65536, how: How::Copy },
                Part { range_offset: 65536, len: 4 * MIB, how: How::Map { piece: 0, file_offset: 0xa0_0000 } },
            ]
        );
        assert_eq!(p.span, 4 * MIB + 65536);
    }
}
