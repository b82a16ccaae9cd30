//! The generated `wasi:filesystem` host traits, implemented read-only over famfs.

use super::FamfsFsCtx;
use super::node::{FsNode, Kind};
use super::stream::FileStream;
use wasmtime::component::Resource;
use wasmtime_wasi::p2::bindings::filesystem::{preopens, types as async_types};
use wasmtime_wasi::p2::bindings::sync::filesystem::types;
use wasmtime_wasi::p2::bindings::sync::io::streams;
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, FsError, FsResult};

/// Largest read served by one `read` call or stream read: bounds the host buffer.
pub(super) const MAX_READ: u64 = 1 << 20;

type E = async_types::ErrorCode;

/// A directory listing being read by the guest.
pub(super) struct Listing {
    entries: std::vec::IntoIter<types::DirectoryEntry>,
}

fn read_only<T>() -> FsResult<T> {
    Err(E::ReadOnly.into())
}

impl FamfsFsCtx<'_> {
    /// The node behind a descriptor handle (made by this module: see the module docs).
    fn node(&self, fd: &Resource<types::Descriptor>) -> FsResult<FsNode> {
        Ok(self.table.get(&Resource::<FsNode>::new_borrow(fd.rep()))?.clone())
    }

    fn push_node(&mut self, node: FsNode) -> FsResult<Resource<types::Descriptor>> {
        Ok(Resource::new_own(self.table.push(node)?.rep()))
    }
}

fn descriptor_type(kind: Kind) -> types::DescriptorType {
    match kind {
        Kind::Dir => types::DescriptorType::Directory,
        Kind::File { .. } => types::DescriptorType::RegularFile,
    }
}

fn stat(node: &FsNode) -> types::DescriptorStat {
    types::DescriptorStat {
        type_: descriptor_type(node.kind),
        link_count: 1,
        size: node.size(),
        // famfs logs no timestamps.
        data_access_timestamp: None,
        data_modification_timestamp: None,
        status_change_timestamp: None,
    }
}

fn metadata_hash(node: &FsNode) -> types::MetadataHashValue {
    use std::hash::{Hash, Hasher};
    let mut lower = std::collections::hash_map::DefaultHasher::new();
    (node.path.as_str(), node.size()).hash(&mut lower);
    let mut upper = std::collections::hash_map::DefaultHasher::new();
    (node.size(), node.path.as_str(), "famfs").hash(&mut upper);
    types::MetadataHashValue { lower: lower.finish(), upper: upper.finish() }
}

impl types::Host for FamfsFsCtx<'_> {
    fn convert_error_code(&mut self, err: FsError) -> wasmtime::Result<types::ErrorCode> {
        Ok(err.downcast()?.into())
    }

    fn filesystem_error_code(&mut self, _err: Resource<streams::Error>) -> wasmtime::Result<Option<types::ErrorCode>> {
        // Our streams report failures as plain stream errors; no filesystem code to add.
        Ok(None)
    }
}

impl types::HostDescriptor for FamfsFsCtx<'_> {
    fn read_via_stream(
        &mut self,
        fd: Resource<types::Descriptor>,
        offset: types::Filesize,
    ) -> FsResult<Resource<DynInputStream>> {
        let node = self.node(&fd)?;
        if node.kind == Kind::Dir {
            return Err(E::IsDirectory.into());
        }
        let stream: DynInputStream = Box::new(FileStream { node, offset });
        Ok(self.table.push(stream)?)
    }

    fn write_via_stream(
        &mut self,
        _fd: Resource<types::Descriptor>,
        _offset: types::Filesize,
    ) -> FsResult<Resource<DynOutputStream>> {
        read_only()
    }

    fn append_via_stream(&mut self, _fd: Resource<types::Descriptor>) -> FsResult<Resource<DynOutputStream>> {
        read_only()
    }

    fn advise(
        &mut self,
        fd: Resource<types::Descriptor>,
        _offset: types::Filesize,
        _len: types::Filesize,
        _advice: types::Advice,
    ) -> FsResult<()> {
        self.node(&fd).map(|_| ())
    }

    fn sync_data(&mut self, fd: Resource<types::Descriptor>) -> FsResult<()> {
        self.node(&fd).map(|_| ())
    }

    fn get_flags(&mut self, fd: Resource<types::Descriptor>) -> FsResult<types::DescriptorFlags> {
        self.node(&fd)?;
        Ok(types::DescriptorFlags::READ)
    }

    fn get_type(&mut self, fd: Resource<types::Descriptor>) -> FsResult<types::DescriptorType> {
        Ok(descriptor_type(self.node(&fd)?.kind))
    }

    fn set_size(&mut self, _fd: Resource<types::Descriptor>, _size: types::Filesize) -> FsResult<()> {
        read_only()
    }

    fn set_times(
        &mut self,
        _fd: Resource<types::Descriptor>,
        _atim: types::NewTimestamp,
        _mtim: types::NewTimestamp,
    ) -> FsResult<()> {
        read_only()
    }

    fn read(
        &mut self,
        fd: Resource<types::Descriptor>,
        len: types::Filesize,
        offset: types::Filesize,
    ) -> FsResult<(Vec<u8>, bool)> {
        let node = self.node(&fd)?;
        let data = node.read(offset, len)?;
        let eof = offset.saturating_add(data.len() as u64) >= node.size();
        Ok((data, eof))
    }

    fn write(
        &mut self,
        _fd: Resource<types::Descriptor>,
        _buf: Vec<u8>,
        _offset: types::Filesize,
    ) -> FsResult<types::Filesize> {
        read_only()
    }

    fn read_directory(&mut self, fd: Resource<types::Descriptor>) -> FsResult<Resource<types::DirectoryEntryStream>> {
        let node = self.node(&fd)?;
        if node.kind != Kind::Dir {
            return Err(E::NotDirectory.into());
        }
        let entries = node
            .fs
            .namespace()
            .read_dir(&node.path)
            .map_err(|_| E::NoEntry)?
            .into_iter()
            .map(|e| types::DirectoryEntry {
                type_: match e.node {
                    famfs::namespace::EntryNode::Dir(_) => types::DescriptorType::Directory,
                    famfs::namespace::EntryNode::File(_) => types::DescriptorType::RegularFile,
                },
                name: e.name.to_string(),
            })
            .collect::<Vec<_>>();
        let listing = self.table.push(Listing { entries: entries.into_iter() })?;
        Ok(Resource::new_own(listing.rep()))
    }

    fn sync(&mut self, fd: Resource<types::Descriptor>) -> FsResult<()> {
        self.node(&fd).map(|_| ())
    }

    fn create_directory_at(&mut self, _fd: Resource<types::Descriptor>, _path: String) -> FsResult<()> {
        read_only()
    }

    fn stat(&mut self, fd: Resource<types::Descriptor>) -> FsResult<types::DescriptorStat> {
        Ok(stat(&self.node(&fd)?))
    }

    fn stat_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        _path_flags: types::PathFlags,
        path: String,
    ) -> FsResult<types::DescriptorStat> {
        Ok(stat(&self.node(&fd)?.resolve(&path)?))
    }

    fn set_times_at(
        &mut self,
        _fd: Resource<types::Descriptor>,
        _path_flags: types::PathFlags,
        _path: String,
        _atim: types::NewTimestamp,
        _mtim: types::NewTimestamp,
    ) -> FsResult<()> {
        read_only()
    }

    fn link_at(
        &mut self,
        _fd: Resource<types::Descriptor>,
        _old_path_flags: types::PathFlags,
        _old_path: String,
        _new_descriptor: Resource<types::Descriptor>,
        _new_path: String,
    ) -> FsResult<()> {
        read_only()
    }

    fn open_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        _path_flags: types::PathFlags,
        path: String,
        oflags: types::OpenFlags,
        flags: types::DescriptorFlags,
    ) -> FsResult<Resource<types::Descriptor>> {
        let base = self.node(&fd)?;
        let mutate = types::DescriptorFlags::WRITE
            | types::DescriptorFlags::MUTATE_DIRECTORY
            | types::DescriptorFlags::FILE_INTEGRITY_SYNC
            | types::DescriptorFlags::DATA_INTEGRITY_SYNC;
        if flags.intersects(mutate)
            || oflags.intersects(types::OpenFlags::CREATE | types::OpenFlags::EXCLUSIVE | types::OpenFlags::TRUNCATE)
        {
            // Say not-found for a missing file only when nothing would be created.
            return read_only();
        }
        let node = base.resolve(&path)?;
        if oflags.contains(types::OpenFlags::DIRECTORY) && node.kind != Kind::Dir {
            return Err(E::NotDirectory.into());
        }
        self.push_node(node)
    }

    fn drop(&mut self, fd: Resource<types::Descriptor>) -> wasmtime::Result<()> {
        self.table.delete(Resource::<FsNode>::new_own(fd.rep()))?;
        Ok(())
    }

    fn readlink_at(&mut self, fd: Resource<types::Descriptor>, path: String) -> FsResult<String> {
        // famfs has no symbolic links: whatever is there is not one.
        self.node(&fd)?.resolve(&path)?;
        Err(E::Invalid.into())
    }

    fn remove_directory_at(&mut self, _fd: Resource<types::Descriptor>, _path: String) -> FsResult<()> {
        read_only()
    }

    fn rename_at(
        &mut self,
        _fd: Resource<types::Descriptor>,
        _old_path: String,
        _new_fd: Resource<types::Descriptor>,
        _new_path: String,
    ) -> FsResult<()> {
        read_only()
    }

    fn symlink_at(&mut self, _fd: Resource<types::Descriptor>, _old_path: String, _new_path: String) -> FsResult<()> {
        read_only()
    }

    fn unlink_file_at(&mut self, _fd: Resource<types::Descriptor>, _path: String) -> FsResult<()> {
        read_only()
    }

    fn is_same_object(
        &mut self,
        a: Resource<types::Descriptor>,
        b: Resource<types::Descriptor>,
    ) -> wasmtime::Result<bool> {
        let (a, b) = (self.node(&a)?, self.node(&b)?);
        Ok(a.path == b.path)
    }

    fn metadata_hash(&mut self, fd: Resource<types::Descriptor>) -> FsResult<types::MetadataHashValue> {
        Ok(metadata_hash(&self.node(&fd)?))
    }

    fn metadata_hash_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        _path_flags: types::PathFlags,
        path: String,
    ) -> FsResult<types::MetadataHashValue> {
        Ok(metadata_hash(&self.node(&fd)?.resolve(&path)?))
    }
}

impl types::HostDirectoryEntryStream for FamfsFsCtx<'_> {
    fn read_directory_entry(
        &mut self,
        stream: Resource<types::DirectoryEntryStream>,
    ) -> FsResult<Option<types::DirectoryEntry>> {
        let listing = self.table.get_mut(&Resource::<Listing>::new_borrow(stream.rep()))?;
        Ok(listing.entries.next())
    }

    fn drop(&mut self, stream: Resource<types::DirectoryEntryStream>) -> wasmtime::Result<()> {
        self.table.delete(Resource::<Listing>::new_own(stream.rep()))?;
        Ok(())
    }
}

impl preopens::Host for FamfsFsCtx<'_> {
    fn get_directories(&mut self) -> wasmtime::Result<Vec<(Resource<types::Descriptor>, String)>> {
        let (dirs, mut out) = (self.dirs.clone(), Vec::new());
        for (guest, node) in dirs.iter().flat_map(|d| d.preopens()) {
            let fd = self.push_node(node.clone()).map_err(|e| wasmtime::format_err!("{e:?}"))?;
            out.push((fd, guest.clone()));
        }
        Ok(out)
    }
}
