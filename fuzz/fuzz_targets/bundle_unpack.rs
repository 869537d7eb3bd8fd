//! Fuzzes the folder-archive unpacker: the input is written to a file and unpacked into a fresh
//! directory (on tmpfs when /dev/shm exists). Whatever the archive holds, unpacking must not
//! panic, must write nothing outside the destination, must create only regular files and
//! directories there, and on success must have written exactly the files it reports, within the
//! limits.
//!
//! A tar header carries a checksum that random mutations almost never keep valid, so a custom
//! mutator rewrites the checksums of the chain of headers after libFuzzer's own mutation (7 times
//! in 8; the rest still reach the checksum check). Inputs are run as they are, so every saved
//! input reproduces by itself, in the regression test in `bundle.rs` too.
#![no_main]

use std::{
    fs,
    path::{Path, PathBuf},
    sync::OnceLock,
};

use libfuzzer_sys::{fuzz_mutator, fuzz_target};
use modelbay_registry::bundle::{self, BundleLimits};

const LIMITS: BundleLimits = BundleLimits {
    max_files: 64,
    max_depth: 8,
    max_bytes: 1 << 20,
};

/// `<work>/in.tar` is the archive, `<work>/a/b/c/out` the destination: an entry that climbs out
/// with `..` lands inside `<work>` where the walk below sees it.
struct Work {
    root: PathBuf,
    archive: PathBuf,
    dest: PathBuf,
}

fn work() -> &'static Work {
    static WORK: OnceLock<Work> = OnceLock::new();
    WORK.get_or_init(|| {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let root = base.join(format!("modelbay-fuzz-bundle-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("a/b/c")).unwrap();
        Work {
            archive: root.join("in.tar"),
            dest: root.join("a/b/c/out"),
            root,
        }
    })
}

/// Every path under `dir`, relative to `base`, with whether it is a directory; panics on
/// anything that is neither a regular file nor a directory (symlinks are not followed).
fn walk(base: &Path, dir: &Path, out: &mut Vec<(PathBuf, bool, u64)>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        let relative = path.strip_prefix(base).unwrap().to_owned();
        if meta.is_dir() {
            out.push((relative, true, 0));
            walk(base, &path, out);
        } else {
            assert!(meta.is_file(), "unpack created a non-regular file {path:?}");
            out.push((relative, false, meta.len()));
        }
    }
}

/// Rewrites the checksum of each header, following the chain of headers as the `tar` crate does
/// (a header, then its data rounded up to 512 bytes), until an all-zero block or a bad size.
fn fix_checksums(data: &mut [u8]) {
    let mut offset = 0usize;
    while let Some(block) = data.get_mut(offset..offset + 512) {
        if block.iter().all(|&b| b == 0) {
            return;
        }
        let mut header = tar::Header::new_old();
        header.as_mut_bytes().copy_from_slice(block);
        header.set_cksum();
        block.copy_from_slice(header.as_bytes());
        let Some(next) = header
            .entry_size()
            .ok()
            .and_then(|size| usize::try_from(size.div_ceil(512)).ok())
            .and_then(|blocks| blocks.checked_mul(512))
            .and_then(|data| offset.checked_add(512)?.checked_add(data))
        else {
            return;
        };
        offset = next;
    }
}

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    let size = libfuzzer_sys::fuzzer_mutate(data, size, max_size);
    if seed % 8 != 0 {
        fix_checksums(&mut data[..size]);
    }
    size
});

fuzz_target!(|data: &[u8]| {
    let w = work();
    fs::write(&w.archive, data).unwrap();
    let result = bundle::unpack(&w.archive, &w.dest, &LIMITS);

    // Nothing outside the destination: the work tree holds exactly in.tar, a/b/c and out.
    let mut all = Vec::new();
    walk(&w.root, &w.root, &mut all);
    for (path, _, _) in &all {
        let allowed = ["in.tar", "a", "a/b", "a/b/c", "a/b/c/out"]
            .iter()
            .any(|p| path == Path::new(p))
            || path.starts_with("a/b/c/out/");
        assert!(allowed, "unpack wrote {path:?} outside the destination");
    }
    for outside in ["/escaped", "/tmp/escaped", "/dev/shm/escaped"] {
        assert!(!Path::new(outside).exists(), "unpack wrote {outside}");
    }

    if let Ok(files) = &result {
        let mut inside = Vec::new();
        walk(&w.dest, &w.dest, &mut inside);
        let written: Vec<_> = inside.iter().filter(|(_, dir, _)| !dir).collect();
        assert!(!files.is_empty());
        assert!(files.len() <= LIMITS.max_files);
        assert_eq!(files.len(), written.len(), "reported {files:?}, wrote {written:?}");
        let total: u64 = written.iter().map(|(_, _, size)| size).sum();
        assert!(total <= LIMITS.max_bytes);
        for (path, _, _) in &written {
            assert!(path.components().count() <= LIMITS.max_depth);
            let name = path.to_str().unwrap();
            assert!(files.iter().any(|f| f == name), "{name} written but not reported");
        }
    }
    if w.dest.exists() {
        fs::remove_dir_all(&w.dest).unwrap();
    }
});
