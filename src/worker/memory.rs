//! What the idle worker keeps resident. glibc's malloc gives each thread
//! that allocates an arena of its own and keeps freed memory in it for
//! reuse; a pulse runs on a thread of its own, so after it the worker would
//! hold that thread's arena (TLS buffers, the snapshot, the JSON) for the
//! hours until the next pulse. One arena for the process, and the free
//! memory handed back to the kernel after each pulse, keep the idle worker
//! small (mallopt(3), malloc_trim(3)). Other C libraries: nothing to do.
//!
//! Most of what stays resident after a pulse is not heap but the pages of
//! the program and its libraries that the pulse ran (TLS, LDAP, Kerberos,
//! SQLite, JSON...): mapped from their files, they stay in the process for
//! the hours the idle loop does not run them. [`page_out_files`] asks the
//! kernel to reclaim them (madvise(2) `MADV_PAGEOUT`, Linux 5.4): a hint
//! that never discards data, as a clean file page is read again from its
//! file when next touched. The kernel skips pages other processes map too
//! (the C library's, mostly) and, for a file the process neither owns nor
//! may write, every page (a user's worker running the system's binary).
//! Never `MADV_DONTNEED` here: on a private file mapping it would throw
//! away the pages the dynamic loader relocated.

/// Limits malloc to one arena. Called before the process starts threads
/// (arenas made earlier stay).
pub fn one_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a malloc parameter; M_ARENA_MAX takes any
    // positive count.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Returns the free memory of every arena to the kernel (the worker calls
/// it once a pulse ended and its thread is gone).
pub fn release_free() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointer; 0 keeps no padding.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A mapping of `/proc/self/maps` ([proc_pid_maps(5)]) worth handing back
/// after a pulse: private and not writable (code, read-only data, the
/// relocated read-only part), backed by a file of a file system. Writable
/// mappings (`.data`, `.bss`, the heap) hold what the program changed and
/// are the allocator's business; device, memfd and System V segments are
/// left alone. Returns the start and the length.
fn advisable(line: &str) -> Option<(usize, usize)> {
    let mut fields = line.split_whitespace();
    let range = fields.next()?;
    let perms = fields.next()?.as_bytes();
    let _offset = fields.next()?;
    let _device = fields.next()?;
    let _inode = fields.next()?;
    let path = fields.next()?;
    if perms.len() != 4 || perms[1] == b'w' || perms[3] != b'p' {
        return None;
    }
    if !path.starts_with('/')
        || path.starts_with("/dev/")
        || path.starts_with("/memfd:")
        || path.starts_with("/SYSV")
    {
        return None;
    }
    let (start, end) = range.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    (end > start).then(|| (start, end - start))
}

/// Asks the kernel to reclaim the file-backed pages of [`advisable`]
/// mappings (after a pulse and after a directory-marker check: the idle
/// loop runs little of the program until the next one). Fails soft: a
/// kernel without `MADV_PAGEOUT` (EINVAL) or a mapping gone meanwhile only
/// leaves pages resident. Returns the number of mappings the kernel took
/// the hint for.
pub fn page_out_files() -> usize {
    #[cfg(target_os = "linux")]
    {
        let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
            return 0;
        };
        let mut taken = 0;
        for (start, len) in maps.lines().filter_map(advisable) {
            // SAFETY: MADV_PAGEOUT changes no content and no mapping: a
            // reclaimed page is read back from its file on the next touch
            // (madvise(2)). The range came from the kernel's own list; if a
            // thread unmapped it since, the call fails (ENOMEM) and nothing
            // happens.
            let rc = unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_PAGEOUT) };
            if rc == 0 {
                taken += 1;
            } else if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
                // A kernel before 5.4 knows no MADV_PAGEOUT (or refuses this
                // mapping, a locked one): no other mapping fares better.
                break;
            }
        }
        taken
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_private_read_only_file_mappings_are_handed_back() {
        let cases: &[(&str, Option<(usize, usize)>)] = &[
            (
                "55d0c0a00000-55d0c1b0f000 r-xp 00623000 fe:01 1234   /usr/bin/autoenroll",
                Some((0x55d0c0a00000, 0x110f000)),
            ),
            (
                "55d0c0000000-55d0c0623000 r--p 00000000 fe:01 1234   /usr/bin/autoenroll",
                Some((0x55d0c0000000, 0x623000)),
            ),
            (
                "7f00aa000000-7f00aa001000 r--p 00000000 fe:01 99     /usr/lib/libc.so.6",
                Some((0x7f00aa000000, 0x1000)),
            ),
            // A path with spaces: its first word is enough to judge it.
            (
                "7f00aa000000-7f00aa002000 r--p 00000000 fe:01 99     /opt/my tools/lib.so",
                Some((0x7f00aa000000, 0x2000)),
            ),
            // The program's writable data, and the heap, stack, anonymous memory.
            (
                "55d0c1b0f000-55d0c1b17000 rw-p 01732000 fe:01 1234   /usr/bin/autoenroll",
                None,
            ),
            (
                "55d0c2000000-55d0c2100000 rw-p 00000000 00:00 0      [heap]",
                None,
            ),
            (
                "7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0      [stack]",
                None,
            ),
            ("7f00ab000000-7f00ab400000 rw-p 00000000 00:00 0", None),
            (
                "7ffd00100000-7ffd00102000 r-xp 00000000 00:00 0      [vdso]",
                None,
            ),
            // Shared mappings, devices, memfd and System V segments.
            (
                "7f00ac000000-7f00ac008000 r--s 00000000 fe:01 77     /var/lib/x/db-shm",
                None,
            ),
            (
                "7f00ad000000-7f00ad001000 r--p 00000000 00:06 5      /dev/zero",
                None,
            ),
            (
                "7f00ae000000-7f00ae001000 r--p 00000000 00:01 8      /memfd:x (deleted)",
                None,
            ),
            (
                "7f00af000000-7f00af001000 r--p 00000000 00:01 9      /SYSV00000000",
                None,
            ),
            // Malformed lines.
            ("", None),
            ("zz-yy r--p 0 0 0 /lib/x.so", None),
            ("2000-1000 r--p 00000000 fe:01 1 /lib/x.so", None),
            ("1000-2000 r- 00000000 fe:01 1 /lib/x.so", None),
        ];
        for (line, expected) in cases {
            assert_eq!(advisable(line), *expected, "{line:?}");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn paging_out_loses_nothing() {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        // A private read-only mapping of a file of our own, like the program's.
        let mut file = tempfile::tempfile().unwrap();
        let pages: Vec<u8> = (0..64 * 4096).map(|i| (i % 251) as u8).collect();
        file.write_all(&pages).unwrap();
        file.sync_all().unwrap();
        // SAFETY: a fresh private read-only mapping of a whole file nothing
        // else writes; unmapped below.
        let at = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                pages.len(),
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(at, libc::MAP_FAILED);
        // SAFETY: the mapping is pages.len() bytes long and readable.
        let mapped = unsafe { std::slice::from_raw_parts(at as *const u8, pages.len()) };
        assert_eq!(mapped, &pages[..]);
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let line = maps
            .lines()
            .find(|l| l.starts_with(&format!("{:x}-", at as usize)))
            .unwrap();
        assert_eq!(advisable(line), Some((at as usize, pages.len())), "{line}");

        page_out_files();
        // Whatever the kernel reclaimed is read again from the file, and the
        // process, whose own code was handed back too, runs on.
        assert_eq!(mapped, &pages[..]);
        // SAFETY: unmapping what was mapped above; `mapped` is not used after.
        assert_eq!(unsafe { libc::munmap(at, pages.len()) }, 0);
    }
}
