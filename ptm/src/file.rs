//! Reading a model file an app names: whole, and only when it is a regular file.

use std::fs::File;
use std::io::Read;
use std::path::Path;

/// Opens `path` for reading when it is a regular file. A FIFO or a device would block
/// the load forever or never end: opened without blocking, then refused.
pub(crate) fn open_regular(path: &Path) -> Result<(File, usize), String> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let file = options.open(path).map_err(|e| e.to_string())?;
    let metadata = file.metadata().map_err(|e| e.to_string())?;
    if !metadata.is_file() {
        return Err(format!("it is not a regular file (a {}): give the path of the model file", kind(&metadata.file_type())));
    }
    let len = usize::try_from(metadata.len()).map_err(|_| "it is larger than this machine can address".to_string())?;
    Ok((file, len))
}

/// Reads `len` bytes of `file` into `buffer` (of that length): all of them, or an error
/// when the file changed size meanwhile.
pub(crate) fn read_exact_len(mut file: File, buffer: &mut [u8]) -> Result<(), String> {
    file.read_exact(buffer).map_err(|e| format!("{e} (did the file change while it was read?)"))?;
    let mut probe = [0u8; 1];
    match file.read(&mut probe) {
        Ok(0) => Ok(()),
        Ok(_) => Err("it grew while it was read".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn kind(file_type: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "FIFO";
        }
        if file_type.is_socket() {
            return "socket";
        }
        if file_type.is_char_device() || file_type.is_block_device() {
            return "device";
        }
    }
    if file_type.is_dir() {
        "directory"
    } else {
        "special file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_open() {
        let dir = std::env::temp_dir().join(format!("ptm-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let error = open_regular(&dir).unwrap_err();
        assert!(error.contains("not a regular file (a directory)"), "{error}");
        let file = dir.join("model.bin");
        std::fs::write(&file, b"12345").unwrap();
        let (opened, len) = open_regular(&file).unwrap();
        assert_eq!(len, 5);
        let mut buffer = [0u8; 5];
        read_exact_len(opened, &mut buffer).unwrap();
        assert_eq!(&buffer, b"12345");
        let (opened, _) = open_regular(&file).unwrap();
        assert!(read_exact_len(opened, &mut [0u8; 4]).unwrap_err().contains("grew"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = std::env::temp_dir().join(format!("ptm-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("model.fifo");
        let path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
        let error = open_regular(&fifo).unwrap_err();
        assert!(error.contains("not a regular file (a FIFO)"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
