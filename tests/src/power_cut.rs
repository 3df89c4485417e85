//! A filesystem that forgets, on a power cut, everything not yet made durable.
//!
//! A SIGKILL cannot show a missing `fsync`: the kernel's page cache outlives the process. This
//! FUSE filesystem (mounted by the test, in memory) keeps two images of its files: what
//! programs see, and what a disk would still hold after the power went out. Only
//! `fsync`/`fdatasync` of a file moves its content to the durable image; only an `fsync` of a
//! directory moves that directory's entries (a new file, an unlink, a rename). A
//! [`PowerCutFs::freeze`] is the instant of the cut: from then on no write, sync, create,
//! rename or unlink completes (the calling thread hangs, as a machine without power would),
//! the test SIGKILLs the programs, and [`Mount::power_on`] remounts what survived.
//!
//! What survives a cut: the durable image, plus, per file, a random prefix of the writes
//! issued since its last sync, the last of them possibly torn mid-way (a disk writes a file's
//! dirty pages in some order and may stop inside one). With [`Survival::DurableOnly`] nothing
//! unsynced survives.
//!
//! Why FUSE and not an `LD_PRELOAD` shim: the kernel hands a FUSE server every operation
//! whatever the program calls it through (`pwrite`, `fdatasync`, writes through a shared
//! `mmap` as SQLite does for its `-shm` file, `O_APPEND`), and it needs no cooperation from
//! the program's libc or linking. As root, `fuser` mounts with the `mount` system call
//! directly: no libfuse, no `fusermount`, no package to install.

use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
    WriteFlags,
};
use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The kernel may cache names and attributes this long; every change passes through the
/// kernel, so its caches stay right, and a remount after a cut empties them.
const TTL: Duration = Duration::from_secs(1);

/// What a cut keeps of the writes not yet synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Survival {
    /// Nothing: only what was synced.
    DurableOnly,
    /// Per file, a random prefix of its unsynced writes, the last possibly torn, drawn from
    /// this seed.
    TornPrefix(u64),
}

/// The kind of operation a [`Trigger`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// A write (or a truncation) of file content.
    Write,
    /// An `fsync`/`fdatasync` of a file.
    Sync,
    /// A change to a directory: create, unlink, rename, mkdir, rmdir, or its `fsync`.
    Directory,
}

/// Cuts the power just before the `nth` operation of `kind` on a file whose name ends with
/// `suffix` (that operation never happens).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    /// The end of the file's name (`".db-wal"`, `".jsonl"`, `".tmp"`).
    pub suffix: String,
    /// What is counted.
    pub kind: OpKind,
    /// Which one, from 1.
    pub nth: u64,
}

#[derive(Debug, Clone)]
enum Body {
    File(Vec<u8>),
    Dir(BTreeMap<OsString, u64>),
}

#[derive(Debug, Clone)]
struct Node {
    body: Body,
    perm: u16,
}

impl Node {
    fn file(perm: u16) -> Self {
        Self {
            body: Body::File(Vec::new()),
            perm,
        }
    }
    fn dir(perm: u16) -> Self {
        Self {
            body: Body::Dir(BTreeMap::new()),
            perm,
        }
    }
}

/// Every inode, by number.
type Image = HashMap<u64, Node>;

#[derive(Debug, Clone)]
enum Op {
    Write { offset: u64, data: Vec<u8> },
    Truncate(u64),
}

fn apply(content: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Write { offset, data } => {
            let start = usize::try_from(*offset).unwrap_or(usize::MAX);
            let end = start.saturating_add(data.len());
            if content.len() < end {
                content.resize(end, 0);
            }
            content[start..end].copy_from_slice(data);
        }
        Op::Truncate(size) => content.resize(usize::try_from(*size).unwrap_or(usize::MAX), 0),
    }
}

/// A small deterministic generator (splitmix64): the cut must replay from its seed.
#[derive(Debug)]
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..=max`.
    fn upto(&mut self, max: usize) -> usize {
        (self.next() % (max as u64 + 1)) as usize
    }
}

#[derive(Default)]
struct State {
    live: Image,
    durable: Image,
    /// Per file, the content operations since its last sync (or its creation).
    pending: HashMap<u64, Vec<Op>>,
    /// The last name each inode was given, for triggers and reports.
    names: HashMap<u64, OsString>,
    next_ino: u64,
    counts: HashMap<(String, OpKindKey), u64>,
    trigger: Option<Trigger>,
    /// Set at the cut: what was about to happen.
    frozen: Option<String>,
    /// Replies held back since the cut (their callers hang until released).
    held: Vec<Box<dyn std::any::Any + Send>>,
    /// Set once the held replies were released: the programs are being killed, and what they
    /// still try (a dying process writes back its shared mappings) fails at once.
    released: bool,
    /// Operations seen, by kind, in total (to show a test really exercised the filesystem).
    syncs: u64,
    cuts: u64,
}

/// What happens to an operation.
enum Gate {
    /// It happens.
    Go,
    /// The power is off: its caller hangs (the reply is held).
    Hold,
    /// The power is off and the programs are being killed: it fails with an I/O error.
    Fail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum OpKindKey {
    Write,
    Sync,
    Directory,
}

impl From<OpKind> for OpKindKey {
    fn from(kind: OpKind) -> Self {
        match kind {
            OpKind::Write => Self::Write,
            OpKind::Sync => Self::Sync,
            OpKind::Directory => Self::Directory,
        }
    }
}

impl State {
    fn new() -> Self {
        let mut live = Image::new();
        live.insert(1, Node::dir(0o755));
        Self {
            durable: live.clone(),
            live,
            next_ino: 2,
            ..Self::default()
        }
    }

    /// Counts an operation and decides whether it may happen.
    fn pass(&mut self, ino: u64, kind: OpKind, what: &str) -> Gate {
        if self.frozen.is_some() {
            return if self.released {
                Gate::Fail
            } else {
                Gate::Hold
            };
        }
        let name = self
            .names
            .get(&ino)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(trigger) = &self.trigger {
            if trigger.kind == kind && name.ends_with(&trigger.suffix) {
                let count = self
                    .counts
                    .entry((trigger.suffix.clone(), kind.into()))
                    .or_default();
                *count += 1;
                if *count >= trigger.nth {
                    self.frozen = Some(format!("{what} {name} (#{count} of its kind)"));
                    self.trigger = None;
                    self.cuts += 1;
                    return Gate::Hold;
                }
            }
        }
        Gate::Go
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let node = self.live.get(&ino)?;
        let (kind, size, nlink) = match &node.body {
            Body::File(data) => (FileType::RegularFile, data.len() as u64, 1),
            Body::Dir(_) => (FileType::Directory, 0, 2),
        };
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        Some(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: at,
            mtime: at,
            ctime: at,
            crtime: at,
            kind,
            perm: node.perm,
            nlink,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    fn child(&self, parent: u64, name: &OsStr) -> Option<u64> {
        match &self.live.get(&parent)?.body {
            Body::Dir(entries) => entries.get(name).copied(),
            Body::File(_) => None,
        }
    }

    fn entries_mut(&mut self, dir: u64) -> Result<&mut BTreeMap<OsString, u64>, Errno> {
        match self.live.get_mut(&dir).map(|n| &mut n.body) {
            Some(Body::Dir(entries)) => Ok(entries),
            Some(Body::File(_)) => Err(Errno::ENOTDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn make(&mut self, parent: u64, name: &OsStr, node: Node) -> Result<u64, Errno> {
        if self.child(parent, name).is_some() {
            return Err(Errno::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        let is_file = matches!(node.body, Body::File(_));
        self.live.insert(ino, node);
        self.entries_mut(parent)?.insert(name.to_owned(), ino);
        self.names.insert(ino, name.to_owned());
        if is_file {
            self.pending.insert(ino, Vec::new());
        }
        Ok(ino)
    }

    fn content_op(&mut self, ino: u64, op: Op) -> Result<(), Errno> {
        match self.live.get_mut(&ino).map(|n| &mut n.body) {
            Some(Body::File(content)) => apply(content, &op),
            Some(Body::Dir(_)) => return Err(Errno::EISDIR),
            None => return Err(Errno::ENOENT),
        }
        self.pending.entry(ino).or_default().push(op);
        Ok(())
    }

    fn sync_file(&mut self, ino: u64) {
        if let Some(node) = self.live.get(&ino) {
            self.durable.insert(ino, node.clone());
            self.pending.remove(&ino);
            self.syncs += 1;
        }
    }

    fn sync_dir(&mut self, ino: u64) {
        let Some(Node {
            body: Body::Dir(entries),
            perm,
        }) = self.live.get(&ino).cloned()
        else {
            return;
        };
        for child in entries.values() {
            if !self.durable.contains_key(child) {
                // The entry is durable, the content only as far as it was synced: nothing.
                let empty = match self.live.get(child).map(|n| &n.body) {
                    Some(Body::Dir(_)) => Node::dir(0o755),
                    _ => Node::file(self.live.get(child).map_or(0o644, |n| n.perm)),
                };
                self.durable.insert(*child, empty);
            }
        }
        self.durable.insert(
            ino,
            Node {
                body: Body::Dir(entries),
                perm,
            },
        );
        self.syncs += 1;
    }

    /// What the disk holds when the power comes back.
    fn survivors(&self, survival: Survival) -> Image {
        let mut image = self.durable.clone();
        let Survival::TornPrefix(seed) = survival else {
            return image;
        };
        let mut dice = Dice(seed);
        let mut files: Vec<&u64> = self.pending.keys().collect();
        files.sort();
        for ino in files {
            let Some(Node {
                body: Body::File(content),
                ..
            }) = image.get_mut(ino)
            else {
                continue;
            };
            let ops = &self.pending[ino];
            let kept = dice.upto(ops.len());
            for (index, op) in ops.iter().take(kept).enumerate() {
                match op {
                    Op::Write { offset, data } if index + 1 == kept && !data.is_empty() => {
                        let torn = 1 + dice.upto(data.len() - 1);
                        apply(
                            content,
                            &Op::Write {
                                offset: *offset,
                                data: data[..torn].to_vec(),
                            },
                        );
                    }
                    op => apply(content, op),
                }
            }
        }
        image
    }
}

/// The shared state of the filesystem, kept across remounts.
#[derive(Clone)]
pub struct PowerCutFs {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for PowerCutFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PowerCutFs").finish_non_exhaustive()
    }
}

impl Default for PowerCutFs {
    fn default() -> Self {
        Self::new()
    }
}

impl PowerCutFs {
    /// An empty filesystem (the root directory only, durable).
    pub fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new(State::new())),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Mounts it at `at` (an existing empty directory).
    pub fn mount(&self, at: &Path) -> std::io::Result<Mount> {
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName("passfort-power-cut".into()),
            MountOption::RW,
        ];
        let session = fuser::spawn_mount(Server { fs: self.clone() }, at, &config)?;
        Ok(Mount {
            fs: self.clone(),
            at: at.to_path_buf(),
            session: Some(session),
        })
    }

    /// Arms a cut at an operation to come (replacing any armed one; counting starts now).
    pub fn arm(&self, trigger: Trigger) {
        let mut state = self.lock();
        state.counts.clear();
        state.trigger = Some(trigger);
    }

    /// Disarms the armed cut, if it has not fired.
    pub fn disarm(&self) {
        self.lock().trigger = None;
    }

    /// Cuts the power now (if it is not already cut).
    pub fn freeze(&self, why: &str) {
        let mut state = self.lock();
        if state.frozen.is_none() {
            state.frozen = Some(why.to_owned());
            state.cuts += 1;
        }
    }

    /// What the power was cut on, once it is cut.
    pub fn frozen(&self) -> Option<String> {
        self.lock().frozen.clone()
    }

    /// How many cuts happened so far.
    pub fn cuts(&self) -> u64 {
        self.lock().cuts
    }

    /// How many file and directory syncs the programs made so far.
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    /// Answers every operation held since the cut with an I/O error, so that processes the
    /// test has SIGKILLed can finish dying (a process waiting on a FUSE answer already handed
    /// to the server only exits once it gets one).
    pub fn release_held(&self) {
        let held = {
            let mut state = self.lock();
            if state.frozen.is_some() {
                state.released = true;
            }
            std::mem::take(&mut state.held)
        };
        drop(held);
    }

    /// The content of the file at `path` (relative to the root) as programs see it now.
    pub fn live_file(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.lock();
        let mut ino = 1;
        for part in path.iter() {
            ino = state.child(ino, part)?;
        }
        match &state.live.get(&ino)?.body {
            Body::File(content) => Some(content.clone()),
            Body::Dir(_) => None,
        }
    }
}

/// A mounted [`PowerCutFs`]; unmounted when dropped.
pub struct Mount {
    fs: PowerCutFs,
    at: PathBuf,
    session: Option<fuser::BackgroundSession>,
}

impl std::fmt::Debug for Mount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mount").field("at", &self.at).finish()
    }
}

impl Mount {
    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.at
    }

    /// After a cut (and once every program using it is dead): unmounts, keeps what `survival`
    /// says survived, and mounts that again.
    pub fn power_on(&mut self, survival: Survival) -> std::io::Result<()> {
        self.fs.release_held();
        if let Some(session) = self.session.take() {
            session.umount_and_join()?;
        }
        {
            let mut state = self.fs.lock();
            let image = state.survivors(survival);
            state.live = image.clone();
            state.durable = image;
            state.pending.clear();
            state.frozen = None;
            state.released = false;
            state.trigger = None;
            state.counts.clear();
        }
        let remounted = self.fs.mount(&self.at)?;
        *self = remounted;
        Ok(())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        self.fs.release_held();
        if let Some(session) = self.session.take() {
            let _ = session.umount_and_join();
        }
    }
}

/// The FUSE side: one per mount, over the shared state.
struct Server {
    fs: PowerCutFs,
}

macro_rules! reply_or_hold {
    ($self:ident, $state:ident, $reply:ident, $ino:expr, $kind:expr, $what:expr) => {
        match $state.pass($ino, $kind, $what) {
            Gate::Go => {}
            Gate::Hold => {
                // Under the same lock as the decision: a release in between would miss it.
                $state.held.push(Box::new($reply));
                return;
            }
            Gate::Fail => return $reply.error(Errno::EIO),
        }
    };
}

impl Filesystem for Server {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let state = self.fs.lock();
        match state.child(parent.0, name).and_then(|ino| state.attr(ino)) {
            Some(attr) => reply.entry(&TTL, &attr, Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.fs.lock().attr(ino.0) {
            Some(attr) => reply.attr(&TTL, &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut state = self.fs.lock();
        if let Some(size) = size {
            reply_or_hold!(self, state, reply, ino.0, OpKind::Write, "truncate");
            if let Err(e) = state.content_op(ino.0, Op::Truncate(size)) {
                return reply.error(e);
            }
        }
        if let Some(mode) = mode {
            if let Some(node) = state.live.get_mut(&ino.0) {
                node.perm = (mode & 0o7777) as u16;
            }
        }
        match state.attr(ino.0) {
            Some(attr) => reply.attr(&TTL, &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let mut state = self.fs.lock();
        reply_or_hold!(self, state, reply, parent.0, OpKind::Directory, "mkdir in");
        match state.make(parent.0, name, Node::dir((mode & 0o7777) as u16)) {
            Ok(ino) => match state.attr(ino) {
                Some(attr) => reply.entry(&TTL, &attr, Generation(0)),
                None => reply.error(Errno::EIO),
            },
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let mut state = self.fs.lock();
        reply_or_hold!(self, state, reply, parent.0, OpKind::Directory, "create in");
        match state.make(parent.0, name, Node::file((mode & 0o7777) as u16)) {
            Ok(ino) => match state.attr(ino) {
                Some(attr) => reply.created(
                    &TTL,
                    &attr,
                    Generation(0),
                    FileHandle(0),
                    FopenFlags::empty(),
                ),
                None => reply.error(Errno::EIO),
            },
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut state = self.fs.lock();
        reply_or_hold!(self, state, reply, parent.0, OpKind::Directory, "unlink in");
        match state.entries_mut(parent.0) {
            Ok(entries) => match entries.remove(name) {
                Some(_) => reply.ok(),
                None => reply.error(Errno::ENOENT),
            },
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut state = self.fs.lock();
        reply_or_hold!(self, state, reply, parent.0, OpKind::Directory, "rmdir in");
        let Some(ino) = state.child(parent.0, name) else {
            return reply.error(Errno::ENOENT);
        };
        match state.live.get(&ino).map(|n| &n.body) {
            Some(Body::Dir(entries)) if entries.is_empty() => {}
            Some(Body::Dir(_)) => return reply.error(Errno::ENOTEMPTY),
            _ => return reply.error(Errno::ENOTDIR),
        }
        match state.entries_mut(parent.0) {
            Ok(entries) => {
                entries.remove(name);
                reply.ok()
            }
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut state = self.fs.lock();
        reply_or_hold!(self, state, reply, parent.0, OpKind::Directory, "rename in");
        if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            return reply.error(Errno::EINVAL);
        }
        let Some(ino) = state.child(parent.0, name) else {
            return reply.error(Errno::ENOENT);
        };
        if flags.contains(RenameFlags::RENAME_NOREPLACE)
            && state.child(newparent.0, newname).is_some()
        {
            return reply.error(Errno::EEXIST);
        }
        if let Err(e) = state.entries_mut(parent.0).map(|e| e.remove(name)) {
            return reply.error(e);
        }
        match state.entries_mut(newparent.0) {
            Ok(entries) => {
                entries.insert(newname.to_owned(), ino);
                state.names.insert(ino, newname.to_owned());
                reply.ok()
            }
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        if self.fs.lock().live.contains_key(&ino.0) {
            reply.opened(FileHandle(0), FopenFlags::empty());
        } else {
            reply.error(Errno::ENOENT);
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let state = self.fs.lock();
        match state.live.get(&ino.0).map(|n| &n.body) {
            Some(Body::File(content)) => {
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(content.len());
                let end = start.saturating_add(size as usize).min(content.len());
                reply.data(&content[start..end]);
            }
            Some(Body::Dir(_)) => reply.error(Errno::EISDIR),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut state = self.fs.lock();
        reply_or_hold!(self, state, reply, ino.0, OpKind::Write, "write to");
        let op = Op::Write {
            offset,
            data: data.to_vec(),
        };
        match state.content_op(ino.0, op) {
            Ok(()) => reply.written(u32::try_from(data.len()).unwrap_or(u32::MAX)),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut state = self.fs.lock();
        reply_or_hold!(self, state, reply, ino.0, OpKind::Sync, "fsync of");
        state.sync_file(ino.0);
        reply.ok();
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let state = self.fs.lock();
        let Some(Body::Dir(entries)) = state.live.get(&ino.0).map(|n| &n.body) else {
            return reply.error(Errno::ENOTDIR);
        };
        let mut all: Vec<(u64, FileType, OsString)> = vec![
            (ino.0, FileType::Directory, ".".into()),
            (ino.0, FileType::Directory, "..".into()),
        ];
        for (name, child) in entries {
            let kind = match state.live.get(child).map(|n| &n.body) {
                Some(Body::Dir(_)) => FileType::Directory,
                _ => FileType::RegularFile,
            };
            all.push((*child, kind, name.clone()));
        }
        for (index, (child, kind, name)) in all.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*child), (index + 1) as u64, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut state = self.fs.lock();
        reply_or_hold!(
            self,
            state,
            reply,
            ino.0,
            OpKind::Directory,
            "fsync of directory"
        );
        state.sync_dir(ino.0);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(1 << 20, 1 << 19, 1 << 19, 1 << 16, 1 << 15, 4096, 255, 4096);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _length: u64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EOPNOTSUPP);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(state: &mut State, ino: u64, offset: u64, data: &[u8]) {
        state
            .content_op(
                ino,
                Op::Write {
                    offset,
                    data: data.to_vec(),
                },
            )
            .unwrap_or_else(|e| panic!("{e:?}"));
    }

    fn content(image: &Image, ino: u64) -> Option<Vec<u8>> {
        match &image.get(&ino)?.body {
            Body::File(c) => Some(c.clone()),
            Body::Dir(_) => None,
        }
    }

    #[test]
    fn only_synced_content_and_synced_names_survive() {
        let mut state = State::new();
        let a = state.make(1, OsStr::new("a"), Node::file(0o644)).unwrap();
        write(&mut state, a, 0, b"hello");
        state.sync_file(a);
        // The name is not durable yet: a cut loses the file.
        assert!(
            !matches!(state.survivors(Survival::DurableOnly).get(&1).map(|n| &n.body),
            Some(Body::Dir(e)) if e.contains_key(OsStr::new("a")))
        );
        state.sync_dir(1);
        write(&mut state, a, 5, b" world");
        let after = state.survivors(Survival::DurableOnly);
        assert_eq!(content(&after, a).as_deref(), Some(&b"hello"[..]));
        // A torn prefix keeps at most what was written, never more.
        for seed in 0..50 {
            let kept = content(&state.survivors(Survival::TornPrefix(seed)), a).unwrap();
            assert!(
                b"hello world".starts_with(&kept) && kept.len() >= 5,
                "{kept:?}"
            );
        }
    }

    #[test]
    fn a_rename_is_durable_only_once_its_directory_is_synced() {
        let mut state = State::new();
        let old = state
            .make(1, OsStr::new("state"), Node::file(0o600))
            .unwrap();
        write(&mut state, old, 0, b"old");
        state.sync_file(old);
        state.sync_dir(1);
        let tmp = state
            .make(1, OsStr::new("state.tmp"), Node::file(0o600))
            .unwrap();
        write(&mut state, tmp, 0, b"new");
        state.sync_file(tmp);
        let entries = state.entries_mut(1).unwrap();
        entries.remove(OsStr::new("state.tmp"));
        entries.insert("state".into(), tmp);
        let before = state.survivors(Survival::DurableOnly);
        let Some(Body::Dir(root)) = before.get(&1).map(|n| &n.body) else {
            panic!("no root")
        };
        assert_eq!(root.get(OsStr::new("state")), Some(&old));
        state.sync_dir(1);
        let after = state.survivors(Survival::DurableOnly);
        let Some(Body::Dir(root)) = after.get(&1).map(|n| &n.body) else {
            panic!("no root")
        };
        assert_eq!(root.get(OsStr::new("state")), Some(&tmp));
        assert_eq!(content(&after, tmp).as_deref(), Some(&b"new"[..]));
    }
}
