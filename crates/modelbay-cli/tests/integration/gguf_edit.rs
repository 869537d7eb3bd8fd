//! A real GGUF file with another chat template: its header rewritten, its tensors untouched.
//! Lets the tests serve SmolLM2's weights behind a template such as a reasoning model's.

const CHAT_TEMPLATE: &str = "tokenizer.chat_template";
const STRING: u32 = 8;
const ARRAY: u32 = 9;

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        let slice = &self.bytes[self.at..self.at + n];
        self.at += n;
        slice
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take(4).try_into().unwrap())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take(8).try_into().unwrap())
    }
    fn string(&mut self) -> String {
        let len = self.u64() as usize;
        String::from_utf8(self.take(len).to_vec()).unwrap()
    }
    /// Skips a value of GGUF type `kind`; returns it if it is a u32.
    fn skip(&mut self, kind: u32) -> Option<u32> {
        match kind {
            0 | 1 | 7 => drop(self.take(1)),
            2 | 3 => drop(self.take(2)),
            4 | 5 => return Some(self.u32()),
            6 => drop(self.take(4)),
            10..=12 => drop(self.take(8)),
            STRING => drop(self.string()),
            ARRAY => {
                let inner = self.u32();
                for _ in 0..self.u64() {
                    self.skip(inner);
                }
            }
            other => panic!("unknown GGUF value type {other}"),
        }
        None
    }
}

fn put_string(out: &mut Vec<u8>, text: &str) {
    out.extend((text.len() as u64).to_le_bytes());
    out.extend(text.as_bytes());
}

/// `gguf` with its `tokenizer.chat_template` replaced by `template`.
pub(crate) fn with_chat_template(gguf: &[u8], template: &str) -> Vec<u8> {
    let mut r = Reader { bytes: gguf, at: 0 };
    assert_eq!(r.take(4), b"GGUF");
    let version = r.u32();
    let tensors = r.u64();
    let pairs = r.u64();
    let mut out = Vec::with_capacity(gguf.len() + template.len());
    out.extend(b"GGUF");
    out.extend(version.to_le_bytes());
    out.extend(tensors.to_le_bytes());
    out.extend(pairs.to_le_bytes());
    let mut alignment = 32u64;
    let mut replaced = false;
    for _ in 0..pairs {
        let start = r.at;
        let key = r.string();
        let kind = r.u32();
        let value = r.skip(kind);
        if key == "general.alignment" {
            alignment = u64::from(value.unwrap());
        }
        if key == CHAT_TEMPLATE {
            put_string(&mut out, &key);
            out.extend(STRING.to_le_bytes());
            put_string(&mut out, template);
            replaced = true;
        } else {
            out.extend(&gguf[start..r.at]);
        }
    }
    assert!(replaced, "the file has no chat template to replace");
    let infos = r.at;
    for _ in 0..tensors {
        r.string();
        let dims = r.u32();
        r.take(8 * dims as usize + 4 + 8);
    }
    out.extend(&gguf[infos..r.at]);
    // Tensor data starts at the next multiple of the alignment, in both files; tensor offsets
    // are relative to it, so the data is copied as it is.
    let data = (r.at as u64).div_ceil(alignment) * alignment;
    let padded = (out.len() as u64).div_ceil(alignment) * alignment;
    out.resize(padded as usize, 0);
    out.extend(&gguf[data as usize..]);
    out
}
