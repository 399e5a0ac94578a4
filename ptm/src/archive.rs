//! A .ptl's zip structure, checked before libtorch reads it.
//!
//! libtorch's loader trusts the archive: one flipped byte inside a record could crash the
//! process. Every record's local header must agree with the central directory and lie
//! inside the file, and every stored record's bytes must match its CRC-32 (ptm writes
//! records uncompressed; a deflated one, as torch's own saves have, is checked for
//! bounds only). zip64 records (torch's saves) are read too.

/// Why `bytes` are not a whole .ptl, or `None`.
pub(crate) fn problem(bytes: &[u8]) -> Option<String> {
    let len = bytes.len();
    if len == 0 {
        return Some("it is empty (0 bytes), not a .ptl".into());
    }
    if !bytes.starts_with(b"PK\x03\x04") {
        return Some(format!("its {len} bytes are not a .ptl, which is a zip archive (they do not start as one)"));
    }
    let Some(end) = end_record(bytes) else {
        return Some(format!("the archive is truncated: its {len} bytes lack the zip's closing record"));
    };
    let directory = match directory(bytes, end) {
        Ok(directory) => directory,
        Err(problem) => return Some(format!("the archive is damaged: {problem}")),
    };
    check_records(bytes, directory).err().map(|problem| format!("the archive is damaged: {problem}"))
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?)))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?)))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// The offset of the end-of-central-directory record, which with its comment ends the
/// file exactly, searched within the last 64 KiB.
fn end_record(bytes: &[u8]) -> Option<usize> {
    let first = bytes.len().saturating_sub(65_557);
    (first..bytes.len().saturating_sub(21))
        .rev()
        .find(|&at| bytes[at..].starts_with(b"PK\x05\x06") && u16_at(bytes, at + 20).is_some_and(|comment| at as u64 + 22 + comment == bytes.len() as u64))
}

/// Where the central directory lies and how many entries it has.
struct Directory {
    offset: usize,
    size: usize,
    entries: u64,
}

fn directory(bytes: &[u8], end: usize) -> Result<Directory, String> {
    let broken = || "its closing record is cut short".to_string();
    let (mut entries, mut size, mut offset) =
        (u16_at(bytes, end + 10).ok_or_else(broken)?, u32_at(bytes, end + 12).ok_or_else(broken)?, u32_at(bytes, end + 16).ok_or_else(broken)?);
    // zip64: a locator just before the closing record points at the zip64 record.
    if end >= 20 && bytes[end - 20..].starts_with(b"PK\x06\x07") {
        let record = u64_at(bytes, end - 20 + 8).ok_or_else(broken)?;
        let record =
            usize::try_from(record).ok().filter(|&r| bytes.get(r..).is_some_and(|b| b.starts_with(b"PK\x06\x06"))).ok_or("its zip64 locator points nowhere")?;
        let field = |at: usize| u64_at(bytes, record + at).ok_or_else(|| "its zip64 record is cut short".to_string());
        (entries, size, offset) = (field(32)?, field(40)?, field(48)?);
    }
    let (offset, size) =
        (usize::try_from(offset).map_err(|_| "its directory offset is too large")?, usize::try_from(size).map_err(|_| "its directory size is too large")?);
    if offset.checked_add(size).is_none_or(|stop| stop > end) {
        return Err(format!("its central directory ({size} bytes at {offset}) does not lie before its closing record"));
    }
    Ok(Directory { offset, size, entries })
}

fn check_records(bytes: &[u8], directory: Directory) -> Result<(), String> {
    let mut at = directory.offset;
    let stop = directory.offset + directory.size;
    for index in 0..directory.entries {
        let entry = |field: usize| u32_at(bytes, at + field).filter(|_| at + 46 <= stop).ok_or(format!("directory entry {index} is cut short"));
        if !bytes.get(at..).is_some_and(|b| b.starts_with(b"PK\x01\x02")) {
            return Err(format!("directory entry {index} has no signature"));
        }
        let method = u16_at(bytes, at + 10).ok_or(format!("directory entry {index} is cut short"))?;
        let crc = entry(16)?;
        let (mut compressed, mut local) = (entry(20)?, entry(42)?);
        let name_len = u16_at(bytes, at + 28).unwrap_or(0) as usize;
        let extra_len = u16_at(bytes, at + 30).unwrap_or(0) as usize;
        let comment_len = u16_at(bytes, at + 32).unwrap_or(0) as usize;
        let name = bytes.get(at + 46..at + 46 + name_len).ok_or(format!("directory entry {index} is cut short"))?;
        let shown = String::from_utf8_lossy(name).into_owned();
        if compressed == 0xFFFF_FFFF || local == 0xFFFF_FFFF {
            (compressed, local) =
                zip64_sizes(bytes, at + 46 + name_len, extra_len, entry(24)?, compressed, local).ok_or(format!("record {shown} has a broken zip64 field"))?;
        }
        let local = usize::try_from(local).map_err(|_| format!("record {shown} lies beyond the file"))?;
        if !bytes.get(local..).is_some_and(|b| b.starts_with(b"PK\x03\x04")) {
            return Err(format!("record {shown} has no local header where the directory says"));
        }
        let local_name = u16_at(bytes, local + 26).unwrap_or(0) as usize;
        let local_extra = u16_at(bytes, local + 28).unwrap_or(0) as usize;
        if bytes.get(local + 30..local + 30 + local_name) != Some(name) {
            return Err(format!("record {shown} is named otherwise in its local header"));
        }
        let start = local + 30 + local_name + local_extra;
        let data = usize::try_from(compressed)
            .ok()
            .and_then(|n| bytes.get(start..start.checked_add(n)?))
            .filter(|_| start as u64 + compressed <= directory.offset as u64);
        let data = data.ok_or(format!("record {shown} runs past its end"))?;
        if method == 0 && u64::from(crc32fast::hash(data)) != crc {
            return Err(format!("record {shown} does not match its checksum"));
        }
        at += 46 + name_len + extra_len + comment_len;
    }
    Ok(())
}

/// The compressed size and local header offset of a zip64 entry: its extra field
/// 0x0001 holds, in order, each of uncompressed size, compressed size and offset whose
/// 32-bit field is 0xFFFFFFFF.
fn zip64_sizes(bytes: &[u8], extra: usize, extra_len: usize, uncompressed: u64, compressed: u64, local: u64) -> Option<(u64, u64)> {
    let mut at = extra;
    while at + 4 <= extra + extra_len {
        let (id, size) = (u16_at(bytes, at)?, u16_at(bytes, at + 2)? as usize);
        if id == 1 {
            let mut field = at + 4;
            let mut next = || {
                let value = u64_at(bytes, field);
                field += 8;
                value
            };
            if uncompressed == 0xFFFF_FFFF {
                next()?;
            }
            let compressed = if compressed == 0xFFFF_FFFF { next()? } else { compressed };
            let local = if local == 0xFFFF_FFFF { next()? } else { local };
            return Some((compressed, local));
        }
        at += 4 + size;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored zip of the given records, as ptm writes them.
    fn zip(records: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut directory = Vec::new();
        for (name, data) in records {
            let offset = out.len() as u32;
            let crc = crc32fast::hash(data);
            out.extend_from_slice(b"PK\x03\x04\x14\x00\x00\x00\x00\x00\x00\x00\x21\x00");
            out.extend_from_slice(&crc.to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(data);
            directory.extend_from_slice(b"PK\x01\x02\x14\x00\x14\x00\x00\x00\x00\x00\x00\x00\x21\x00");
            directory.extend_from_slice(&crc.to_le_bytes());
            directory.extend_from_slice(&(data.len() as u32).to_le_bytes());
            directory.extend_from_slice(&(data.len() as u32).to_le_bytes());
            directory.extend_from_slice(&(name.len() as u16).to_le_bytes());
            directory.extend_from_slice(&[0; 12]);
            directory.extend_from_slice(&offset.to_le_bytes());
            directory.extend_from_slice(name.as_bytes());
        }
        let offset = out.len() as u32;
        out.extend_from_slice(&directory);
        out.extend_from_slice(b"PK\x05\x06\x00\x00\x00\x00");
        out.extend_from_slice(&(records.len() as u16).to_le_bytes());
        out.extend_from_slice(&(records.len() as u16).to_le_bytes());
        out.extend_from_slice(&(directory.len() as u32).to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }

    #[test]
    fn a_whole_archive_passes_and_every_flipped_byte_of_a_record_is_caught() {
        let archive = zip(&[("model/data.pkl", b"pickle bytes"), ("model/extra/ptm_identity", b"ptm-identity 1\n")]);
        assert_eq!(problem(&archive), None);
        for at in 0..archive.len() {
            let mut damaged = archive.clone();
            damaged[at] ^= 0x5A;
            // Never a panic; fields no reader uses (versions, times, flags) may change
            // unnoticed, and whatever is caught is named as damage.
            if let Some(text) = problem(&damaged) {
                assert!(text.starts_with("the archive is") || text.contains("not a .ptl"), "{text}");
            }
        }
        let data_byte = archive.windows(6).position(|w| w == b"pickle").unwrap();
        let mut damaged = archive.clone();
        damaged[data_byte] ^= 1;
        assert_eq!(problem(&damaged).as_deref(), Some("the archive is damaged: record model/data.pkl does not match its checksum"));
        assert!(problem(&archive[..archive.len() - 3]).unwrap().contains("truncated"));
        assert!(problem(b"").unwrap().contains("empty"));
    }
}
