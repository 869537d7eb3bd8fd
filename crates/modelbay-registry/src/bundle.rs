//! A model folder as one artifact: an uncompressed tar archive written deterministically (sorted
//! paths, no timestamps or owners), so the same folder always packs to the same bytes and the
//! same digest. Unpacking trusts nothing in the archive: only regular files with plain relative
//! paths, bounded counts, depth and sizes, written into a fresh directory.

use std::{
    collections::BTreeSet,
    fs,
    io::{Read, Write},
    path::{Component, Path, PathBuf},
};

use crate::{Error, Result};

/// What an archive may hold before unpacking refuses it.
#[derive(Debug, Clone)]
pub struct BundleLimits {
    pub max_files: usize,
    /// Directory levels below the root (`1_Pooling/config.json` is depth 2).
    pub max_depth: usize,
    /// Bytes of all files together.
    pub max_bytes: u64,
}

impl Default for BundleLimits {
    fn default() -> Self {
        Self {
            max_files: 1000,
            max_depth: 8,
            max_bytes: 16 << 30,
        }
    }
}

/// One file written into an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedFile {
    /// Path inside the archive, `/`-separated.
    pub path: String,
    pub size: u64,
}

/// What [`pack`] did.
#[derive(Debug, Default)]
pub struct PackSummary {
    pub files: Vec<PackedFile>,
    /// Paths left out because no engine reads them (hidden files, weights in other frameworks'
    /// formats, alternative ONNX exports).
    pub skipped: Vec<String>,
}

/// Whether `head` (the first 512 bytes or more of a file) is a tar archive.
pub fn is_bundle(head: &[u8]) -> bool {
    head.get(257..262) == Some(b"ustar")
}

/// Packs the regular files under `dir` (symlinks are followed, as in Hugging Face caches) into a
/// tar archive written to `out`.
pub fn pack(dir: &Path, out: impl Write) -> Result<PackSummary> {
    let mut summary = PackSummary::default();
    let mut paths = Vec::new();
    collect(dir, dir, &mut paths, &mut summary.skipped)?;
    paths.sort();
    let mut builder = tar::Builder::new(out);
    for (name, path) in paths {
        let file = fs::File::open(&path)?;
        let size = file.metadata()?.len();
        let mut header = tar::Header::new_ustar();
        header.set_size(size);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, &name, file)?;
        summary.files.push(PackedFile { path: name, size });
    }
    builder.into_inner()?.flush()?;
    if summary.files.is_empty() {
        return Err(invalid(format!(
            "'{}' holds no files to push",
            dir.display()
        )));
    }
    Ok(summary)
}

/// Files that no engine reads: packing them would only make the artifact bigger.
fn ignored(relative: &str, name: &str) -> bool {
    const OTHER_FRAMEWORKS: &[&str] = &[
        "pytorch_model.bin",
        "tf_model.h5",
        "flax_model.msgpack",
        "rust_model.ot",
    ];
    name.starts_with('.')
        || OTHER_FRAMEWORKS.contains(&name)
        || relative == "openvino"
        || (relative.starts_with("onnx/") && name.ends_with(".onnx") && name != "model.onnx")
}

fn collect(
    root: &Path,
    dir: &Path,
    out: &mut Vec<(String, PathBuf)>,
    skipped: &mut Vec<String>,
) -> Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let relative = path
            .strip_prefix(root)
            .map_err(|e| Error::Io(std::io::Error::other(e)))?;
        let relative = relative
            .components()
            .map(|c| c.as_os_str().to_str())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| invalid(format!("'{}' is not a UTF-8 path", path.display())))?
            .join("/");
        let name = relative.rsplit('/').next().unwrap_or_default().to_owned();
        if ignored(&relative, &name) {
            skipped.push(relative);
            continue;
        }
        let meta = fs::metadata(&path)?; // follows symlinks
        if meta.is_dir() {
            collect(root, &path, out, skipped)?;
        } else if meta.is_file() {
            out.push((relative, path));
        }
    }
    Ok(())
}

/// Unpacks the archive at `archive` into `dest`, which must not exist yet (it is created), and
/// returns the paths written. Refuses links, devices, extension headers (GNU long names, PAX),
/// absolute paths, `..`, duplicates, a file where a directory is needed, and anything over
/// `limits`, naming the offending entry. Files and directories are synced before it returns.
pub fn unpack(archive: &Path, dest: &Path, limits: &BundleLimits) -> Result<Vec<String>> {
    fs::create_dir(dest)?;
    let mut tar = tar::Archive::new(fs::File::open(archive)?);
    // Raw: extension headers come to us as entries (and are refused) instead of being read
    // whole, unbounded, by the `tar` crate. Our packer never writes them.
    let entries = tar
        .entries()
        .map_err(|e| invalid(format!("not a tar archive: {e}")))?
        .raw(true);
    let mut files = BTreeSet::new();
    let mut dirs = BTreeSet::new();
    let mut total = 0u64;
    for entry in entries {
        let mut entry = entry.map_err(|e| invalid(format!("damaged archive: {e}")))?;
        let kind = entry.header().entry_type();
        let name = String::from_utf8(entry.path_bytes().into_owned())
            .map_err(|_| invalid("an entry's path is not UTF-8".to_owned()))?;
        match kind {
            tar::EntryType::Directory => continue,
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            other => {
                return Err(invalid(format!(
                    "entry '{name}' is a {other:?}; only regular files are accepted"
                )))
            }
        }
        let relative = safe_relative(&name, limits.max_depth)?;
        let parents: Vec<PathBuf> = relative.ancestors().skip(1).map(Path::to_owned).collect();
        if files.contains(&relative) {
            return Err(invalid(format!("entry '{name}' appears twice")));
        }
        if dirs.contains(&relative) || parents.iter().any(|p| files.contains(p)) {
            return Err(invalid(format!(
                "entry '{name}' is both a file and a folder in the archive"
            )));
        }
        files.insert(relative.clone());
        dirs.extend(parents.into_iter().filter(|p| !p.as_os_str().is_empty()));
        if files.len() > limits.max_files {
            return Err(invalid(format!(
                "the archive holds more than {} files",
                limits.max_files
            )));
        }
        let size = entry.size();
        total = total.saturating_add(size);
        if total > limits.max_bytes {
            return Err(invalid(format!(
                "the archive unpacks to more than {} bytes",
                limits.max_bytes
            )));
        }
        let target = dest.join(&relative);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&target)?;
        let copied = std::io::copy(&mut (&mut entry).take(size), &mut file)?;
        if copied != size {
            return Err(invalid(format!("entry '{name}' is truncated")));
        }
        file.sync_all()?;
    }
    if files.is_empty() {
        return Err(invalid("the archive holds no files".to_owned()));
    }
    // Deepest first, so each directory's entries are durable before its parent's.
    for dir in dirs.iter().rev() {
        fs::File::open(dest.join(dir))?.sync_all()?;
    }
    fs::File::open(dest)?.sync_all()?;
    Ok(files
        .into_iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect())
}

/// `name` as a path of plain components under the root, at most `max_depth` deep.
fn safe_relative(name: &str, max_depth: usize) -> Result<PathBuf> {
    let path = Path::new(name);
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => {
                let part = part.to_string_lossy();
                if part.len() > 255 || part.contains('\\') || part.contains('\0') {
                    return Err(invalid(format!("entry '{name}' has an unusable file name")));
                }
                clean.push(&*part);
            }
            Component::CurDir => {}
            _ => {
                return Err(invalid(format!(
                    "entry '{name}' points outside the archive's folder"
                )))
            }
        }
    }
    let depth = clean.components().count();
    if depth == 0 {
        return Err(invalid(format!("entry '{name}' has an empty path")));
    }
    if depth > max_depth {
        return Err(invalid(format!(
            "entry '{name}' is nested deeper than {max_depth} levels"
        )));
    }
    Ok(clean)
}

fn invalid(message: String) -> Error {
    Error::InvalidBundle(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("config.json"), b"{}").unwrap();
        fs::create_dir(dir.path().join("1_Pooling")).unwrap();
        fs::write(dir.path().join("1_Pooling/config.json"), b"{\"a\":1}").unwrap();
        fs::write(dir.path().join(".gitattributes"), b"x").unwrap();
        fs::write(dir.path().join("pytorch_model.bin"), b"x").unwrap();
        fs::create_dir(dir.path().join("onnx")).unwrap();
        fs::write(dir.path().join("onnx/model.onnx"), b"onnx").unwrap();
        fs::write(dir.path().join("onnx/model_qint8.onnx"), b"q").unwrap();
        dir
    }

    fn packed(dir: &Path) -> (Vec<u8>, PackSummary) {
        let mut bytes = Vec::new();
        let summary = pack(dir, &mut bytes).unwrap();
        (bytes, summary)
    }

    #[test]
    fn packing_is_deterministic_and_skips_what_no_engine_reads() {
        let a = folder();
        let b = folder();
        let (first, summary) = packed(a.path());
        let (second, _) = packed(b.path());
        assert_eq!(first, second, "same folder, same bytes");
        assert!(is_bundle(&first));
        let paths: Vec<_> = summary.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            ["1_Pooling/config.json", "config.json", "onnx/model.onnx"]
        );
        assert_eq!(summary.skipped.len(), 3, "{:?}", summary.skipped);
    }

    #[test]
    fn unpack_restores_the_folder() {
        let src = folder();
        let (bytes, _) = packed(src.path());
        let work = tempfile::tempdir().unwrap();
        let archive = work.path().join("a.tar");
        fs::write(&archive, bytes).unwrap();
        let dest = work.path().join("out");
        let files = unpack(&archive, &dest, &BundleLimits::default()).unwrap();
        assert_eq!(files.len(), 3);
        assert_eq!(
            fs::read(dest.join("1_Pooling/config.json")).unwrap(),
            b"{\"a\":1}"
        );
    }

    /// Writes a raw tar entry, bypassing the `tar` crate's own path checks.
    fn raw_entry(out: &mut Vec<u8>, name: &str, kind: u8, data: &[u8], link: &str) {
        let mut header = [0u8; 512];
        header[..name.len()].copy_from_slice(name.as_bytes());
        header[100..108].copy_from_slice(b"0000644\0");
        header[108..116].copy_from_slice(b"0000000\0");
        header[116..124].copy_from_slice(b"0000000\0");
        header[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
        header[136..148].copy_from_slice(b"00000000000\0");
        header[156] = kind;
        header[157..157 + link.len()].copy_from_slice(link.as_bytes());
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        header[148..156].copy_from_slice(b"        ");
        let sum: u32 = header.iter().map(|&b| b as u32).sum();
        header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }

    /// A raw entry: path, tar type flag, content, link target.
    type RawEntry<'a> = (&'a str, u8, &'a [u8], &'a str);

    fn unpack_raw(entries: &[RawEntry], limits: &BundleLimits) -> Result<()> {
        let mut bytes = Vec::new();
        for (name, kind, data, link) in entries {
            raw_entry(&mut bytes, name, *kind, data, link);
        }
        bytes.extend_from_slice(&[0u8; 1024]);
        let work = tempfile::tempdir().unwrap();
        let archive = work.path().join("a.tar");
        fs::write(&archive, bytes).unwrap();
        let result = unpack(&archive, &work.path().join("out"), limits).map(|_| ());
        for outside in [work.path().join("escaped"), PathBuf::from("/tmp/escaped")] {
            assert!(
                !outside.exists(),
                "nothing may land outside the destination"
            );
        }
        result
    }

    #[test]
    fn hostile_archives_are_refused() {
        let limits = BundleLimits::default();
        let cases: &[(&str, Vec<RawEntry>)] = &[
            ("parent", vec![("../escaped", b'0', b"x", "")]),
            ("nested parent", vec![("a/../../escaped", b'0', b"x", "")]),
            ("absolute", vec![("/tmp/escaped", b'0', b"x", "")]),
            ("symlink", vec![("link", b'2', b"", "/etc/passwd")]),
            ("hard link", vec![("link", b'1', b"", "config.json")]),
            ("device", vec![("dev", b'3', b"", "")]),
            (
                "duplicate",
                vec![("a.json", b'0', b"x", ""), ("a.json", b'0', b"y", "")],
            ),
            (
                "too deep",
                vec![("a/b/c/d/e/f/g/h/i/j.json", b'0', b"x", "")],
            ),
            ("empty", vec![]),
        ];
        for (what, entries) in cases {
            let err = unpack_raw(entries, &limits).expect_err(what);
            assert!(matches!(err, Error::InvalidBundle(_)), "{what}: {err}");
        }
    }

    /// Every input kept by the fuzzer (`fuzz/corpus/bundle_unpack`) or that once made it fail
    /// (`fuzz/artifacts/bundle_unpack`) unpacks or is refused without a panic, with the fuzz
    /// target's limits, and writes nothing outside the destination.
    #[test]
    fn fuzz_corpus_and_artifacts_unpack_or_are_refused() {
        let limits = BundleLimits {
            max_files: 64,
            max_depth: 8,
            max_bytes: 1 << 20,
        };
        let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
        let mut inputs = 0;
        for dir in ["corpus/bundle_unpack", "artifacts/bundle_unpack"] {
            let Ok(entries) = fs::read_dir(fuzz.join(dir)) else {
                assert!(dir.starts_with("artifacts"), "{dir} is missing");
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                let work = tempfile::tempdir().unwrap();
                let dest = work.path().join("a/out");
                fs::create_dir(work.path().join("a")).unwrap();
                if let Ok(files) = unpack(&path, &dest, &limits) {
                    assert!(!files.is_empty() && files.len() <= limits.max_files);
                    for file in &files {
                        assert!(fs::symlink_metadata(dest.join(file)).unwrap().is_file());
                    }
                }
                let outside: Vec<_> = fs::read_dir(work.path())
                    .unwrap()
                    .chain(fs::read_dir(work.path().join("a")).unwrap())
                    .map(|e| e.unwrap().file_name())
                    .collect();
                assert_eq!(
                    outside,
                    ["a", "out"],
                    "{path:?} wrote outside the destination"
                );
                inputs += 1;
            }
        }
        assert!(inputs > 0, "the fuzz corpus is empty");
    }

    #[test]
    fn limits_bound_files_and_bytes() {
        let small = BundleLimits {
            max_files: 1,
            max_depth: 8,
            max_bytes: 4,
        };
        let two = vec![("a", b'0', &b"x"[..], ""), ("b", b'0', &b"x"[..], "")];
        assert!(unpack_raw(&two, &small).is_err());
        let big = vec![("a", b'0', &b"12345"[..], "")];
        assert!(unpack_raw(&big, &small).is_err());
        let fine = vec![("a", b'0', &b"1234"[..], "")];
        unpack_raw(&fine, &small).unwrap();
    }
}
