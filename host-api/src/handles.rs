//! Resource handles for core modules: what the component model's handle tables do for
//! components. A handle packs a slot index and a generation, so a handle that was dropped
//! (and its slot reused) or never issued is recognised and rejected rather than aliased.

/// A table of live resources of one kind.
pub struct HandleTable<T> {
    slots: Vec<(u32, Option<T>)>,
    free: Vec<usize>,
}

const INDEX_BITS: u32 = 20;
const INDEX_MASK: u32 = (1 << INDEX_BITS) - 1;
/// Most live resources of one kind per instance.
pub const MAX_HANDLES: usize = INDEX_MASK as usize;

impl<T> Default for HandleTable<T> {
    fn default() -> Self {
        HandleTable { slots: Vec::new(), free: Vec::new() }
    }
}

impl<T> HandleTable<T> {
    /// Stores `value`; `None` when the table is full.
    pub fn insert(&mut self, value: T) -> Option<u32> {
        let index = match self.free.pop() {
            Some(i) => i,
            None if self.slots.len() < MAX_HANDLES => {
                self.slots.push((0, None));
                self.slots.len() - 1
            }
            None => return None,
        };
        let slot = &mut self.slots[index];
        slot.0 = (slot.0 + 1) & ((1 << (31 - INDEX_BITS)) - 1);
        slot.1 = Some(value);
        // Handle 0 is never issued: index + 1 in the low bits.
        Some((slot.0 << INDEX_BITS) | (index as u32 + 1))
    }

    fn locate(&self, handle: u32) -> Option<usize> {
        let index = (handle & INDEX_MASK).checked_sub(1)? as usize;
        let (generation, value) = self.slots.get(index)?;
        (value.is_some() && *generation == handle >> INDEX_BITS).then_some(index)
    }

    /// The value behind a live handle.
    pub fn get(&self, handle: u32) -> Option<&T> {
        self.locate(handle).and_then(|i| self.slots[i].1.as_ref())
    }

    /// Removes a live handle.
    pub fn remove(&mut self, handle: u32) -> Option<T> {
        let i = self.locate(handle)?;
        self.free.push(i);
        self.slots[i].1.take()
    }

    /// How many handles are live.
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Whether no handle is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The live handles, in slot order.
    pub fn handles(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, (_, v))| v.is_some())
            .map(|(i, (generation, _))| (generation << INDEX_BITS) | (i as u32 + 1))
    }

    /// Live values.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().filter_map(|(_, v)| v.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_and_forged_handles_are_rejected() {
        let mut t = HandleTable::default();
        let a = t.insert("a").unwrap();
        assert_ne!(a, 0);
        assert_eq!(t.get(a), Some(&"a"));
        assert_eq!(t.remove(a), Some("a"));
        assert_eq!(t.remove(a), None, "double drop");
        assert!(t.is_empty());
        let b = t.insert("b").unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t.handles().collect::<Vec<_>>(), [b]);
        assert_ne!(a, b, "the reused slot has a new generation");
        assert_eq!(t.get(a), None);
        assert_eq!(t.get(b), Some(&"b"));
        assert_eq!(t.get(0), None);
        assert_eq!(t.get(12345), None);
        assert_eq!(t.get(u32::MAX), None);
    }
}
