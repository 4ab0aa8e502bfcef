//! What the idle worker keeps resident. glibc's malloc gives each thread
//! that allocates an arena of its own and keeps freed memory in it for
//! reuse; a pulse runs on a thread of its own, so after it the worker would
//! hold that thread's arena (TLS buffers, the snapshot, the JSON) for the
//! hours until the next pulse. One arena for the process, and the free
//! memory handed back to the kernel after each pulse, keep the idle worker
//! small (mallopt(3), malloc_trim(3)). Other C libraries: nothing to do.

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
