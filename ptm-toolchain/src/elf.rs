//! The one repair ptm makes to a shared library it links against, on a copy used only
//! by the link: the dynamic symbol table's count of local symbols.
//!
//! An ELF symbol table lists its local symbols first, and its section header's `sh_info`
//! says where they end. The libraries in PyTorch's Android AARs (`libpytorch_jni_lite.so`,
//! linked with gold) keep seven linker symbols (`_end`, `__bss_start`, ...) local but
//! count only the first three entries as local, so LLVM's lld, the NDK's linker since
//! r22, refuses them ("invalid local symbol '__bss_end__' in global part of symbol
//! table"; pytorch/pytorch#129633). Setting `sh_info` to the true count makes the table
//! what the ELF specification says it is. The app still ships the AAR's own library,
//! found at run time by its soname.

/// What [`count_dynamic_locals`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Locals {
    /// The library's count was right; nothing changed.
    Counted,
    /// The count was `was` and is now `now`.
    Recounted {
        /// `sh_info` as the file had it.
        was: u32,
        /// The index of the first non-local symbol.
        now: u32,
    },
}

/// Little-endian ELF fields (every Android ABI is little-endian).
struct Reader<'a> {
    bytes: &'a [u8],
    wide: bool,
}

impl Reader<'_> {
    /// `base + field`, or an error where a malformed offset would overflow.
    fn field(base: usize, field: usize) -> Result<usize, String> {
        base.checked_add(field).ok_or_else(|| "an offset lies past any file".to_string())
    }
    fn at(&self, offset: usize, len: usize) -> Result<&[u8], String> {
        offset.checked_add(len).and_then(|end| self.bytes.get(offset..end)).ok_or_else(|| format!("the file ends before byte {}", offset.saturating_add(len)))
    }
    fn u16(&self, offset: usize) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.at(offset, 2)?.try_into().expect("two bytes")))
    }
    fn u32(&self, offset: usize) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.at(offset, 4)?.try_into().expect("four bytes")))
    }
    /// A 32-bit field in ELF32, a 64-bit one in ELF64.
    fn word(&self, offset: usize) -> Result<usize, String> {
        let value = if self.wide { u64::from_le_bytes(self.at(offset, 8)?.try_into().expect("eight bytes")) } else { u64::from(self.u32(offset)?) };
        usize::try_from(value).map_err(|_| format!("a field at byte {offset} does not fit this machine's addresses"))
    }
}

const SHT_DYNSYM: u32 = 11;
const STB_LOCAL: u8 = 0;

/// Sets the `.dynsym` section's `sh_info` of the little-endian ELF shared library in
/// `bytes` to the number of local symbols it lists first, when it says otherwise. An
/// error names what is malformed, or why the table cannot be repaired this way (a local
/// symbol after a global one).
pub fn count_dynamic_locals(bytes: &mut [u8]) -> Result<Locals, String> {
    if bytes.get(..4) != Some(b"\x7fELF") {
        return Err("not an ELF file".into());
    }
    let wide = match bytes.get(4) {
        Some(1) => false,
        Some(2) => true,
        _ => return Err("neither a 32-bit nor a 64-bit ELF file".into()),
    };
    if bytes.get(5) != Some(&1) {
        return Err("not a little-endian ELF file".into());
    }
    let elf = Reader { bytes, wide };
    let (section_table, entry_size, count) = if wide {
        (elf.word(0x28)?, usize::from(elf.u16(0x3a)?), usize::from(elf.u16(0x3c)?))
    } else {
        (elf.word(0x20)?, usize::from(elf.u16(0x2e)?), usize::from(elf.u16(0x30)?))
    };
    let header_len = if wide { 64 } else { 40 };
    if entry_size < header_len {
        return Err(format!("section headers of {entry_size} bytes, fewer than an ELF section header's {header_len}"));
    }
    // Offsets within a section header: sh_type, sh_offset, sh_size, sh_info, sh_entsize.
    let (type_at, offset_at, size_at, info_at, entsize_at) = if wide { (4, 0x18, 0x20, 0x2c, 0x38) } else { (4, 0x10, 0x14, 0x1c, 0x24) };
    let mut dynsym = None;
    for index in 0..count {
        let header = index.checked_mul(entry_size).and_then(|o| o.checked_add(section_table)).ok_or("the section table lies past any file")?;
        if elf.u32(Reader::field(header, type_at)?)? == SHT_DYNSYM {
            dynsym = Some(header);
            break;
        }
    }
    let Some(header) = dynsym else { return Err("no dynamic symbol table (.dynsym)".into()) };
    let field = |at: usize| Reader::field(header, at);
    let (table, size, info, symbol_size) = (elf.word(field(offset_at)?)?, elf.word(field(size_at)?)?, elf.u32(field(info_at)?)?, elf.word(field(entsize_at)?)?);
    let st_info_at = if wide { 4 } else { 12 };
    if symbol_size <= st_info_at {
        return Err(format!("symbols of {symbol_size} bytes, too small to hold a symbol"));
    }
    let symbols = size / symbol_size;
    elf.at(table, symbols.saturating_mul(symbol_size))?;
    let binding = |index: usize| bytes[table + index * symbol_size + st_info_at] >> 4;
    let locals = (0..symbols).take_while(|&index| binding(index) == STB_LOCAL).count();
    if let Some(late) = (locals..symbols).find(|&index| binding(index) == STB_LOCAL) {
        return Err(format!("its dynamic symbol {late} is local but follows global ones, which no count can describe"));
    }
    let now = u32::try_from(locals).map_err(|_| "more symbols than ELF can count".to_string())?;
    if now == info {
        return Ok(Locals::Counted);
    }
    bytes[header + info_at..header + info_at + 4].copy_from_slice(&now.to_le_bytes());
    Ok(Locals::Recounted { was: info, now })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 file: the header, one `.dynsym` of `bindings.len()` symbols, and
    /// a section table of a null section and that one, with `sh_info = info`.
    fn elf64(bindings: &[u8], info: u32) -> Vec<u8> {
        let symbols_at = 64;
        let sections_at = symbols_at + 24 * bindings.len();
        let mut bytes = vec![0u8; sections_at + 2 * 64];
        bytes[..6].copy_from_slice(b"\x7fELF\x02\x01");
        bytes[0x28..0x30].copy_from_slice(&(sections_at as u64).to_le_bytes());
        bytes[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        bytes[0x3c..0x3e].copy_from_slice(&2u16.to_le_bytes());
        for (index, binding) in bindings.iter().enumerate() {
            bytes[symbols_at + 24 * index + 4] = binding << 4;
        }
        let dynsym = sections_at + 64;
        bytes[dynsym + 4..dynsym + 8].copy_from_slice(&SHT_DYNSYM.to_le_bytes());
        bytes[dynsym + 0x18..dynsym + 0x20].copy_from_slice(&(symbols_at as u64).to_le_bytes());
        bytes[dynsym + 0x20..dynsym + 0x28].copy_from_slice(&(24 * bindings.len() as u64).to_le_bytes());
        bytes[dynsym + 0x2c..dynsym + 0x30].copy_from_slice(&info.to_le_bytes());
        bytes[dynsym + 0x38..dynsym + 0x40].copy_from_slice(&24u64.to_le_bytes());
        bytes
    }

    fn info_of(bytes: &[u8]) -> u32 {
        let dynsym = 64 + 24 * 5 + 64;
        u32::from_le_bytes(bytes[dynsym + 0x2c..dynsym + 0x30].try_into().unwrap())
    }

    #[test]
    fn a_table_that_counts_too_few_locals_is_recounted() {
        // Like the AAR's: three counted, five local, then globals.
        let mut bytes = elf64(&[0, 0, 0, 0, 1], 3);
        assert_eq!(count_dynamic_locals(&mut bytes), Ok(Locals::Recounted { was: 3, now: 4 }));
        assert_eq!(info_of(&bytes), 4);
        assert_eq!(count_dynamic_locals(&mut bytes), Ok(Locals::Counted), "a second pass finds nothing to do");
    }

    #[test]
    fn a_right_count_changes_nothing() {
        let mut bytes = elf64(&[0, 1, 2, 1, 1], 1);
        let before = bytes.clone();
        assert_eq!(count_dynamic_locals(&mut bytes), Ok(Locals::Counted));
        assert_eq!(bytes, before);
    }

    #[test]
    fn a_local_after_a_global_is_refused_and_the_bytes_are_left_alone() {
        let mut bytes = elf64(&[0, 1, 0, 1, 1], 1);
        let before = bytes.clone();
        let error = count_dynamic_locals(&mut bytes).unwrap_err();
        assert!(error.contains("symbol 2 is local but follows global"), "{error}");
        assert_eq!(bytes, before);
    }

    #[test]
    fn malformed_files_are_errors_not_panics() {
        assert_eq!(count_dynamic_locals(&mut b"MZ\x90\x00".to_vec()).unwrap_err(), "not an ELF file");
        assert!(count_dynamic_locals(&mut b"\x7fELF\x02\x02".to_vec()).unwrap_err().contains("little-endian"));
        let whole = elf64(&[0, 0, 1, 1, 1], 1);
        // Every truncation of a valid file fails cleanly or, once the table is whole, succeeds.
        for len in 0..whole.len() {
            let _ = count_dynamic_locals(&mut whole[..len].to_vec());
        }
        // Offsets and sizes pointing past the end, or overflowing.
        let mut far = whole.clone();
        far[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(count_dynamic_locals(&mut far).is_err());
        let mut big = whole.clone();
        let dynsym = 64 + 24 * 5 + 64;
        big[dynsym + 0x20..dynsym + 0x28].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(count_dynamic_locals(&mut big).is_err());
        let mut tiny = whole;
        tiny[dynsym + 0x38..dynsym + 0x40].copy_from_slice(&0u64.to_le_bytes());
        assert!(count_dynamic_locals(&mut tiny).unwrap_err().contains("too small"));
        let mut none = elf64(&[0, 1, 1, 1, 1], 1);
        none[64 + 24 * 5 + 64 + 4] = 2; // SHT_SYMTAB, not SHT_DYNSYM
        assert_eq!(count_dynamic_locals(&mut none).unwrap_err(), "no dynamic symbol table (.dynsym)");
    }
}
